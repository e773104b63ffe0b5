"""Loading a file never runs code from it unless the user opts in (docs/SECURITY.md).

The hostile file is a real checkpoint of a toy run with one extra entry whose pickle
calls ``open(marker, "w")``: if it were unpickled, the marker file would appear.
"""
import os
import os.path as osp
import re

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from clip import clip
from dassl.optim.lr_scheduler import ConstantWarmupScheduler, LinearWarmupScheduler
from dassl.utils import TRUST_CHECKPOINT_ENV, checkpoints_trusted, load_checkpoint, save_checkpoint
from dassl.utils.torchtools import TrustSettingError, UntrustedCheckpointError
from tests.helpers import REPO, run_cli, toy_args

RUN_OPTS = ["OPTIM.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_FREQ", "1"]  # keeps every epoch's file
NO_OPT_IN = {TRUST_CHECKPOINT_ENV: ""}


class CreatesMarker:
    """Unpickling this object calls ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """(data root, run folder): a toy run of 3 epochs with the checkpoint of every epoch."""
    folder = tmp_path_factory.mktemp("safety")
    root, run = str(folder / "data"), str(folder / "run")
    run_cli(toy_args(root, run, *RUN_OPTS))
    return root, run


def rewritten_run(toy_run, folder, change):
    """A run folder whose only checkpoint is epoch 1 of ``toy_run``, passed through ``change``."""
    checkpoint = torch.load(osp.join(toy_run[1], "model", "model.pth.tar-1"), weights_only=True)
    change(checkpoint)
    save_checkpoint(checkpoint, osp.join(str(folder), "model"), model_name="model.pth.tar-1")
    return str(folder)


def toy_trainer(root, output_dir):
    """The toy trainer built in-process as train.py builds it."""
    import tools.toy_linear  # noqa: F401  (registers the toy dataset and trainer)
    import train
    from dassl.engine import build_trainer

    args = [str(a) for a in toy_args(root, output_dir, *RUN_OPTS)]
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(args)))


def test_checkpoint_that_would_run_code_is_refused_for_eval_and_resume(toy_run, tmp_path):
    root, _ = toy_run
    marker = tmp_path / "marker"
    hostile = rewritten_run(toy_run, tmp_path / "hostile",
                            lambda ckpt: ckpt.update(note=CreatesMarker(marker)))
    hostile_file = osp.join(hostile, "model", "model.pth.tar-1")

    evaluate = toy_args(root, str(tmp_path / "eval"), "--eval-only", "--model-dir", hostile,
                        "--load-epoch", "1", *RUN_OPTS)
    resume = toy_args(root, hostile, *RUN_OPTS)  # the same folder again: resumes from epoch 1
    for command in (evaluate, resume):
        proc = run_cli(command, env_extra=NO_OPT_IN, check=False)
        assert proc.returncode == 2, proc.stderr[-2000:]
        error = proc.stderr.strip().splitlines()[-1]
        assert error.startswith(f'train.py: error: refused to load "{hostile_file}": it pickles '
                                "io.open")
        assert "--trust-checkpoint" in error and f"{TRUST_CHECKPOINT_ENV}=1" in error
        assert "Traceback" not in proc.stderr
        assert not marker.exists()
    assert not osp.exists(osp.join(hostile, "model", "model.pth.tar-2"))  # nothing trained



def test_opt_in_loads_the_file_and_runs_its_code(toy_run, tmp_path, monkeypatch):
    root, _ = toy_run
    marker = tmp_path / "marker"
    hostile = rewritten_run(toy_run, tmp_path / "hostile",
                            lambda ckpt: ckpt.update(note=CreatesMarker(marker)))
    trainer = toy_trainer(root, str(tmp_path / "unused"))
    monkeypatch.delenv(TRUST_CHECKPOINT_ENV, raising=False)
    for load in (lambda: trainer.load_model(hostile, epoch=1),  # --eval-only --model-dir
                 lambda: trainer.resume_model_if_exist(hostile)):
        with pytest.raises(UntrustedCheckpointError, match="io.open"):
            load()
    assert not marker.exists()

    # train.py --trust-checkpoint sets the environment variable before anything is loaded.
    import train

    seen = []
    monkeypatch.setattr(train, "main", lambda args: seen.append(checkpoints_trusted()))
    train.run(["--trust-checkpoint", "--eval-only"])
    assert seen == [True] and os.environ[TRUST_CHECKPOINT_ENV] == "1"
    trainer.load_model(hostile, epoch=1)
    assert marker.exists()
    marker.unlink()
    assert trainer.resume_model_if_exist(hostile) == 1
    assert marker.exists()


def upstream_scheduler_state(scheduler):
    """The scheduler state upstream Dassl saves: its warm-up scheduler does not override
    ``state_dict``, so the base class pickles the wrapped scheduler, optimizer inside."""
    return LRScheduler.state_dict(scheduler)


def test_upstream_dassl_checkpoint_evaluates_and_resumes_without_opt_in(toy_run, tmp_path,
                                                                        monkeypatch):
    root, run = toy_run
    trainer = toy_trainer(root, str(tmp_path / "unused"))

    def to_upstream_format(checkpoint):
        trainer.optim.load_state_dict(checkpoint["optimizer"])
        trainer.sched.load_state_dict(checkpoint["scheduler"])
        checkpoint["scheduler"] = upstream_scheduler_state(trainer.sched)

    upstream = rewritten_run(toy_run, tmp_path / "upstream", to_upstream_format)
    upstream_file = osp.join(upstream, "model", "model.pth.tar-1")
    # It really holds pickled objects, which plain weights_only loading refuses.
    assert {"torch.optim.sgd.SGD", "torch.optim.lr_scheduler.CosineAnnealingLR"} <= set(
        torch.serialization.get_unsafe_globals_in_checkpoint(upstream_file))

    monkeypatch.delenv(TRUST_CHECKPOINT_ENV, raising=False)
    trainer.load_model(run, epoch=1)  # what --eval-only --model-dir does
    accuracy = trainer.test()
    trainer.load_model(upstream, epoch=1)
    assert trainer.test() == accuracy and 0 < accuracy <= 100

    proc = run_cli(toy_args(root, upstream, *RUN_OPTS), env_extra=NO_OPT_IN)
    assert "Loaded scheduler" in proc.stdout and "Previous epoch: 1" in proc.stdout
    resumed = torch.load(osp.join(upstream, "model", "model.pth.tar-3"), weights_only=True)
    straight = torch.load(osp.join(run, "model", "model.pth.tar-3"), weights_only=True)
    for key, value in straight["state_dict"].items():  # the learning rates continued exactly
        assert torch.equal(resumed["state_dict"][key], value), key


@pytest.mark.parametrize("optimizer, successor, warmup", [
    ("SGD", "multi_step", ConstantWarmupScheduler),
    ("Adam", "step", LinearWarmupScheduler),
    ("RMSprop", "cosine", ConstantWarmupScheduler),
])
def test_upstream_scheduler_and_optimizer_variants_continue_identically(tmp_path, optimizer,
                                                                        successor, warmup):
    def build():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optim = getattr(torch.optim, optimizer)(model.parameters(), lr=0.1)
        after = {"multi_step": lambda: torch.optim.lr_scheduler.MultiStepLR(optim, [2, 4], 0.5),
                 "step": lambda: torch.optim.lr_scheduler.StepLR(optim, 2, 0.5),
                 "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optim, 6.0)}[successor]()
        return model, optim, warmup(optim, after, 1, 1e-3)

    def epoch(model, optim, sched):
        optim.zero_grad()
        model(torch.ones(4, 3)).pow(2).sum().backward()
        optim.step()
        sched.step()
        return optim.param_groups[0]["lr"]

    model, optim, sched = build()
    for _ in range(3):
        epoch(model, optim, sched)
    save_checkpoint({"state_dict": model.state_dict(), "epoch": 3, "optimizer": optim.state_dict(),
                     "scheduler": upstream_scheduler_state(sched)}, str(tmp_path))
    checkpoint = load_checkpoint(str(tmp_path / "model.pth.tar-3"))

    model2, optim2, sched2 = build()
    model2.load_state_dict(checkpoint["state_dict"])
    optim2.load_state_dict(checkpoint["optimizer"])
    sched2.load_state_dict(checkpoint["scheduler"])
    for _ in range(3):
        assert epoch(model, optim, sched) == epoch(model2, optim2, sched2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))


def test_torchscript_archive_is_not_a_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pth.tar-1")
    torch.jit.script(torch.nn.Linear(2, 2)).save(path)
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load ran"))
    with pytest.warns(UserWarning), pytest.raises(UntrustedCheckpointError, match="TorchScript"):
        load_checkpoint(path)


def test_cached_torchscript_with_wrong_hash_is_never_loaded(tmp_path, monkeypatch):
    """A release name loads TorchScript only once the file's SHA256 matches the release."""
    archive = tmp_path / "tiny.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(archive))
    monkeypatch.setitem(clip._MODELS, "tiny-test", f"http://127.0.0.1:9/{'0' * 64}/tiny.pt")
    monkeypatch.setattr(clip, "_jit_load", lambda *a: pytest.fail("the archive was loaded"))
    with pytest.warns(UserWarning, match="SHA256"), pytest.raises(RuntimeError,
                                                                  match="Could not download"):
        clip.load("tiny-test", download_root=str(tmp_path))


def _project_sources():
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("output", "__pycache__")]
        for name in files:
            if name.endswith((".py", ".sh")):
                path = osp.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    yield osp.relpath(path, REPO), f.read()


def _calls(text, function):
    """The text of every call of ``function`` in ``text``, up to its closing parenthesis."""
    for match in re.finditer(re.escape(function) + r"\(", text):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        yield text[match.start():end + 1]


def test_no_full_unpickle_outside_the_one_opt_in_path():
    full_unpickle = re.compile("weights_only" + r"\s*=\s*False")
    found, implicit, jit_loads = [], [], []
    for path, text in _project_sources():
        found += [path] * len(full_unpickle.findall(text))
        # torch < 2.6 unpickles fully by default: every torch.load says weights_only.
        implicit += [(path, call) for call in _calls(text, "torch.load") if "weights_only" not in call]
        jit_loads += [path] * text.count("torch.jit" + ".load(")
    assert found == [osp.join("dassl", "utils", "torchtools.py")]
    assert implicit == []
    # TorchScript is read in one place, for files clip.model_file resolved.
    assert jit_loads == [osp.join("clip", "clip.py")]


@pytest.mark.parametrize("value, trusted", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), (" Yes ", True),
    ("0", False), ("false", False), ("False", False), ("no", False), ("NO", False), ("", False)])
def test_trust_switch_reads_yes_and_no_words(monkeypatch, value, trusted):
    monkeypatch.setenv(TRUST_CHECKPOINT_ENV, value)
    assert checkpoints_trusted() is trusted


def test_false_does_not_open_the_door_and_an_unknown_value_is_refused(toy_run, tmp_path, monkeypatch):
    root, _ = toy_run
    marker = tmp_path / "marker"
    hostile = rewritten_run(toy_run, tmp_path / "hostile",
                            lambda ckpt: ckpt.update(note=CreatesMarker(marker)))
    monkeypatch.setenv(TRUST_CHECKPOINT_ENV, "false")
    with pytest.raises(UntrustedCheckpointError, match="io.open"):
        load_checkpoint(osp.join(hostile, "model", "model.pth.tar-1"))
    assert not marker.exists()
    for value in ("maybe", "2", "on"):
        monkeypatch.setenv(TRUST_CHECKPOINT_ENV, value)
        with pytest.raises(TrustSettingError) as info:
            load_checkpoint(osp.join(hostile, "model", "model.pth.tar-1"))
        assert f"{TRUST_CHECKPOINT_ENV}={value!r} is neither yes" in str(info.value)
    assert not marker.exists()
    evaluate = toy_args(root, str(tmp_path / "eval"), "--eval-only", "--model-dir", hostile,
                        "--load-epoch", "1", *RUN_OPTS)
    proc = run_cli(evaluate, env_extra={TRUST_CHECKPOINT_ENV: "flase"}, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip() == (f"train.py: error: {TRUST_CHECKPOINT_ENV}='flase' is neither yes "
                                   "(1, true, yes) nor no (0, false, no, or unset); set one of those "
                                   "(docs/SECURITY.md)")
    assert not marker.exists() and not osp.exists(tmp_path / "eval")


def _empty(path):
    open(path, "wb").close()


def _without_state_dict(path):
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["state_dict"]
    torch.save(checkpoint, path)


def _scheduler_of_wrong_type(path):
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["scheduler"] = [1, 2]
    torch.save(checkpoint, path)


@pytest.mark.parametrize("damage, why, commands", [
    (_empty, "it is empty; the file is corrupt or not a PyTorch checkpoint", ("eval", "resume")),
    (_without_state_dict, 'is not a training checkpoint: it has no "state_dict"', ("eval", "resume")),
    (_scheduler_of_wrong_type, "its scheduler state does not fit this run", ("resume",))])
def test_malformed_checkpoints_end_in_one_line_and_leave_no_run_behind(toy_run, tmp_path, damage, why,
                                                                       commands):
    root, _ = toy_run
    run = rewritten_run(toy_run, tmp_path / "run", lambda ckpt: None)
    damaged = osp.join(run, "model", "model.pth.tar-1")
    damage(damaged)
    before = sorted(os.listdir(run))
    line = {"eval": toy_args(root, str(tmp_path / "eval"), "--eval-only", "--model-dir", run,
                             "--load-epoch", "1", *RUN_OPTS),
            "resume": toy_args(root, run, *RUN_OPTS)}
    for command in commands:
        proc = run_cli(line[command], env_extra=NO_OPT_IN, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        error = proc.stderr.strip().splitlines()
        assert len(error) == 1 and damaged in error[0] and why in error[0], error
        assert not osp.exists(tmp_path / "eval")  # an evaluation that never started leaves no folder
        assert sorted(os.listdir(run)) == before  # nor a log that would read as a resumed run


def test_state_and_interpret_prompt_on_a_refused_checkpoint_say_so_in_one_line(toy_run, tmp_path):
    import shutil
    import subprocess
    import sys

    marker = tmp_path / "marker"
    hostile = rewritten_run(toy_run, tmp_path / "hostile",
                            lambda ckpt: ckpt.update(note=CreatesMarker(marker)))
    # interpret_prompt reads the prompt learner's checkpoint of a run with a printed config
    prompt_run = tmp_path / "prompt_run"
    shutil.copytree(osp.join(hostile, "model"), prompt_run / "prompt_learner")
    shutil.copy(osp.join(toy_run[1], "log.txt"), prompt_run / "log.txt")
    # a mid-epoch checkpoint: runs.state reads its epoch from the file
    os.rename(osp.join(hostile, "model", "model.pth.tar-1"),
              osp.join(hostile, "model", "model.pth.tar-interrupted"))
    with open(osp.join(hostile, "model", "checkpoint"), "w") as f:
        f.write("model.pth.tar-interrupted\n")
    env = {**os.environ, **NO_OPT_IN}
    for command in (["-m", "runs.state", hostile],
                    ["-m", "tools.interpret_prompt", "--model-dir", prompt_run, "--load-epoch", "1"]):
        proc = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        error = proc.stderr.strip().splitlines()
        assert len(error) == 1 and "refused to load" in error[0] and "io.open" in error[0], error
        assert not marker.exists()
