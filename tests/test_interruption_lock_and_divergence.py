"""Runs that survive interruption, repeat exactly, hold their output folder alone,
and stop clearly when the loss diverges."""
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys

import pytest
import torch

from tests.helpers import CONFIGS, REPO, make_trainer, tiny_opts

TRAIN_OPTS = ["OPTIM.MAX_EPOCH", "3", "DATALOADER.TRAIN_X.BATCH_SIZE", "2"]
# The tiny model has 2 layers; PromptSRC's GPA sum must survive the interruption.
DEEP_OPTS = {"PromptSRC": ["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                           "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2", "TRAINER.PROMPTSRC.GPA_MEAN", "2"],
             "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "2"]}


def _learned_state(trainer):
    return {name: {k: v.clone() for k, v in trainer._models[name].state_dict().items()}
            for name in trainer.get_model_names()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]) or (  # NaN: a buffer not set yet
                a[name][key].isnan().all() and b[name][key].isnan().all()), (name, key)


@pytest.mark.parametrize("name", ["CoOp", "E2MIM", "PromptSRC", "ProGrad"])
def test_signal_mid_epoch_checkpoints_and_the_resumed_run_ends_identically(
        tiny_clip, fake_caltech, tmp_path, name):
    checkpoint = tiny_clip["tiny-ViT"]
    opts = TRAIN_OPTS + DEEP_OPTS.get(name, [])
    whole = make_trainer(name, fake_caltech, checkpoint, *opts, output_dir=str(tmp_path / "whole"))
    whole.train()
    whole_accuracy = whole.test()
    n_batches = len(whole.train_loader_x)

    # A real SIGTERM, delivered during a batch chosen at random.
    stop_at = random.Random(name).randrange(3 * n_batches - 1)
    stop_epoch, stop_batch = divmod(stop_at, n_batches)
    interrupted = make_trainer(name, fake_caltech, checkpoint, *opts,
                               output_dir=str(tmp_path / "run"))
    step = interrupted.forward_backward

    def forward_backward_then_signal(batch):
        summary = step(batch)
        if (interrupted.epoch, interrupted.batch_idx) == (stop_epoch, stop_batch):
            os.kill(os.getpid(), signal.SIGTERM)
        return summary

    interrupted.forward_backward = forward_backward_then_signal
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        interrupted.train()
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == handler_before  # handlers given back
    for model in interrupted.get_model_names():
        saved = torch.load(tmp_path / "run" / model / "model.pth.tar-interrupted", weights_only=True)
        assert (saved["epoch"], saved["batch"]) == (stop_epoch, stop_batch + 1)

    resumed = make_trainer(name, fake_caltech, checkpoint, *opts,
                           output_dir=str(tmp_path / "run"))
    resumed.train()
    assert resumed.start_epoch == stop_epoch
    _assert_same_state(_learned_state(whole), _learned_state(resumed))
    assert resumed.test() == whole_accuracy
    # The mid-epoch file is gone once an epoch checkpoint supersedes it.
    assert not osp.exists(tmp_path / "run" / "prompt_learner" / "model.pth.tar-interrupted")


def _train_command(root, checkpoint, output_dir, *opts):
    return [sys.executable, "train.py", "--root", root, "--seed", "1", "--trainer", "CoOp",
            "--dataset-config-file", "configs/datasets/caltech101.yaml",
            "--config-file", CONFIGS["CoOp"], "--output-dir", str(output_dir),
            *tiny_opts(checkpoint), *opts]


def test_sigint_to_train_py_says_how_to_resume_and_the_same_command_resumes(
        tiny_clip, fake_caltech, tmp_path):
    command = _train_command(fake_caltech, tiny_clip["tiny-ViT"], tmp_path / "run",
                             "OPTIM.MAX_EPOCH", "20", "DATALOADER.TRAIN_X.BATCH_SIZE", "2",
                             "TRAIN.PRINT_FREQ", "1", "TEST.NO_TEST", "True")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("epoch [2/20]"):
            proc.send_signal(signal.SIGINT)
            break
    output.extend(proc.stdout)
    assert proc.wait(timeout=60) == 128 + signal.SIGINT
    text = "".join(output)
    assert "SIGINT received" in text
    assert re.search(r"Interrupted by SIGINT at epoch 2, batch \d: a resumable checkpoint is in "
                     + re.escape(str(tmp_path / "run")) + r"\. Run the same command again", text)

    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.search(r"Resuming epoch 2 after its batch \d", resumed.stdout)
    assert "Finish training" in resumed.stdout


def _log_lines(text):
    """Loss, accuracy and lr lines of a run's output, without the timings."""
    lines = []
    for line in text.splitlines():
        if line.startswith("epoch ["):
            line = re.sub(r" (time|data) \S+ \(\S+\)", "", line)
            lines.append(re.sub(r" eta \S+", "", line))
        elif "accuracy" in line or "error" in line:
            lines.append(line)
    return lines


@pytest.mark.parametrize("name", ["CoOp", "CoCoOp", "KgCoOp", "E2MIM", "ProGrad", "ZeroshotCLIP", "MaPLe"])
def test_same_seed_same_log(tiny_clip, fake_caltech, tmp_path, capsys, name):
    logs = []
    for run in range(2):
        trainer = make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], *TRAIN_OPTS,
                               *DEEP_OPTS.get(name, []), "TRAIN.PRINT_FREQ", "1",
                               output_dir=str(tmp_path / str(run)))
        capsys.readouterr()
        if name == "ZeroshotCLIP":
            trainer.test()
        else:
            trainer.train()
        logs.append(_log_lines(capsys.readouterr().out))
    assert len(logs[0]) >= (1 if name == "ZeroshotCLIP" else 3 * 6)
    assert logs[0] == logs[1]


# ---------------------------------------------------------------- one run per folder
def test_a_live_run_holds_its_folder_and_a_killed_runs_lock_is_taken_over(
        tiny_clip, fake_caltech, tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, '.');"
         "from runs.lock import lock_output_dir;"
         f"lock_output_dir({str(folder)!r}); print('locked', flush=True); time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        command = _train_command(fake_caltech, tiny_clip["tiny-ViT"], folder)
        command.insert(2, "--no-train")  # flags go before the trailing KEY VALUE overrides
        refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2
        assert f"the output folder {folder} is in use by process {holder.pid}" in refused.stderr
        assert not osp.exists(folder / "log.txt")  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    taken = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert f"left by process {holder.pid}" in taken.stdout
    # A run that ended normally leaves no record: the next one takes over silently.
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Taking over" not in again.stdout


# ---------------------------------------------------------------- divergence
def test_non_finite_loss_stops_with_where_and_keeps_the_last_good_checkpoint(
        tiny_clip, fake_caltech, tmp_path):
    # Mixup on (off in E2MIM's defaults), so that the message lists every loss term.
    trainer = make_trainer("E2MIM", fake_caltech, tiny_clip["tiny-ViT"], *TRAIN_OPTS,
                           "TRAINER.E2MIM.MIXUP_PROB", "1.0", output_dir=str(tmp_path / "run"))
    compute = trainer.compute_loss

    def diverge_in_second_epoch(image, label):
        terms = compute(image, label)
        if trainer.epoch == 1 and trainer.batch_idx == 2:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    trainer.compute_loss = diverge_in_second_epoch
    with pytest.raises(FloatingPointError) as error:
        trainer.train()
    message = str(error.value)
    assert "epoch 2, batch 3" in message and "the loss is nan" in message
    assert "loss_mix" in message and "mi " in message  # the loss terms
    last_good = tmp_path / "run" / "prompt_learner" / "model.pth.tar-1"
    assert str(last_good) in message
    with open(tmp_path / "run" / "prompt_learner" / "checkpoint") as f:
        assert f.read().strip() == "model.pth.tar-1"
    assert torch.isfinite(torch.load(last_good, weights_only=True)["state_dict"]["ctx"]).all()
    assert torch.isfinite(trainer.model.prompt_learner.ctx).all()  # the step was not applied


def test_finite_loss_but_non_finite_weights_are_never_checkpointed(tiny_clip, fake_caltech,
                                                                   tmp_path):
    trainer = make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], *TRAIN_OPTS,
                           output_dir=str(tmp_path / "run"))
    run_epoch = trainer.run_epoch

    def poison_after_second_epoch():
        run_epoch()
        if trainer.epoch == 1:
            with torch.no_grad():
                trainer.model.prompt_learner.ctx[0, 0] = float("inf")

    trainer.run_epoch = poison_after_second_epoch
    with pytest.raises(FloatingPointError, match="prompt_learner.ctx is no longer finite after "
                                                 "epoch 2"):
        trainer.train()
    with open(tmp_path / "run" / "prompt_learner" / "checkpoint") as f:
        assert f.read().strip() == "model.pth.tar-1"


def test_train_py_reports_divergence_in_one_line(tmp_path, fake_caltech, tiny_clip):
    command = _train_command(fake_caltech, tiny_clip["tiny-ViT"], tmp_path / "run",
                             "OPTIM.MAX_EPOCH", "2", "OPTIM.WARMUP_EPOCH", "0",
                             "OPTIM.LR", "1e38")
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "train.py: error: training stopped at epoch" in proc.stderr
    assert "Traceback" not in proc.stderr
