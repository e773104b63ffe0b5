"""tools/sweep.py and runs/grid.py: the scripts' commands, a local queue, a killed job
resumed, and submitit's local executor with a pre-empted job requeued (fake data, tiny CLIP)."""
import glob
import json
import os
import os.path as osp
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from runs.state import run_state
from tests import dataset_trees
from tests.helpers import REPO, tiny_opts
from tools import sweep

GRID = ["--methods", "CoOp", "E2MIM", "--datasets", "caltech101", "--seeds", "1", "2"]
# Two epochs of about 6 batches: long enough to stop a run in its second epoch.
RUN_OPTS = ["OPTIM.MAX_EPOCH", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "TRAIN.PRINT_FREQ", "1"]


def run_dir(out, trainer, seed, split="train_base"):
    cfg = {"CoOp": "vit_b16_ctxv1", "E2MIM": "vit_b16_ep50_ctxv1"}[trainer]
    return osp.join(out, "base2new", split, "caltech101", "shots_16", trainer, cfg, f"seed{seed}")


def weights(folder, epoch=2):
    return torch.load(osp.join(folder, "prompt_learner", f"model.pth.tar-{epoch}"),
                      weights_only=True)["state_dict"]


def sweep_cli(args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "tools.sweep", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


def stop_in_second_epoch(folder, then, timeout=300):
    """Once the train.py writing to ``folder`` is in its second epoch: freeze it, call
    ``then(pid)`` (which sends the signals), let it go on."""
    log, deadline = osp.join(folder, sweep.JOB_LOG), time.time() + timeout
    while time.time() < deadline:
        if osp.exists(log) and "epoch [2/2] batch [1/" in open(log).read():
            pid = next(int(p.split("/")[2]) for p in glob.glob("/proc/[0-9]*/cmdline")
                       if _reads(p).startswith(sys.executable) and f"{folder}\0" in _reads(p)
                       and "train.py" in _reads(p))
            os.kill(pid, signal.SIGSTOP)
            then(pid)
            os.kill(pid, signal.SIGCONT)
            return
        time.sleep(0.02)
    raise AssertionError(f"{folder} never reached its second epoch")


def _reads(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def setting(tmp_path_factory, tiny_clip):
    root = tmp_path_factory.mktemp("sweep")
    dataset_trees.caltech101(str(root / "data"), per_class=12)
    opts = tiny_opts(tiny_clip["tiny-ViT"]) + RUN_OPTS
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return root, opts, env


@pytest.fixture(scope="module")
def local_sweep(setting):
    """The local sweep of the issue, with CoOp seed 2 stopped by SIGTERM in its second epoch."""
    root, opts, env = setting
    out = str(root / "local")
    args = ["base2new", *GRID, "--workers", "2", "--root", str(root / "data"), "--output", out,
            "--opts", *opts]
    proc = subprocess.Popen([sys.executable, "-m", "tools.sweep", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop_in_second_epoch(run_dir(out, "CoOp", 2), lambda pid: os.kill(pid, signal.SIGTERM))
    first = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, first[-3000:]
    status = sweep_cli([*args, "--status"], env)
    second = sweep_cli(args, env)
    # The third call runs in a process that must not import submitit (local executor).
    third = subprocess.run(
        [sys.executable, "-c", "import sys; from tools import sweep; code = sweep.main(sys.argv[1:]); "
         "assert 'submitit' not in sys.modules; sys.exit(code)", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return out, first, status, second, third


def test_local_sweep_resumes_a_killed_job_prints_the_table_and_then_starts_no_job(local_sweep):
    out, first, status, second, third = local_sweep
    killed = run_dir(out, "CoOp", 2)
    assert "4 tasks, 0 finished, 4 to run" in first
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if "CoOp/caltech101/shots16/seed2/train" in x)
    assert line.split()[1:] == ["interrupted", "after", "epoch", "1"]
    assert "CoOp/caltech101/shots16/seed2/test    pending" in status.stdout

    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "4 tasks, 3 finished, 1 to run" in second.stdout
    with open(osp.join(killed, sweep.JOB_LOG)) as f:
        assert "Resuming epoch 2 after its batch" in f.read()
    assert run_state(killed).state == "finished" and run_state(killed).epoch == 2

    assert third.returncode == 0, third.stderr[-3000:]
    assert "4 tasks, 4 finished, 0 to run" in third.stdout and "[sweep] start" not in third.stdout
    for trainer in ("CoOp", "E2MIM"):  # the base / new / H table, both seeds
        table = third.stdout.split(f"\n{trainer} / ")[1]
        row = next(x for x in table.splitlines() if x.startswith("caltech101")).split()
        assert row[1] == "2/2" and row[3] == row[6] == "+-"
        base, new, harmonic = float(row[2]), float(row[5]), float(row[8])
        assert harmonic == pytest.approx(2 * base * new / (base + new), abs=0.01)


def test_submitit_local_executor_requeues_a_preempted_job_which_resumes_exactly(setting, local_sweep):
    root, opts, env = setting
    out = str(root / "submitit")
    args = ["base2new", "--methods", "CoOp", "--datasets", "caltech101", "--seeds", "1", "2",
            "--executor", "submitit-local", "--gpus-per-job", "0", "--root", str(root / "data"),
            "--output", out, "--opts", *opts]
    proc = subprocess.Popen([sys.executable, "-m", "tools.sweep", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def submitit_logs():
        return "".join(_reads(p) for p in glob.glob(osp.join(out, "sweep", "submitit", "*", "*.out")))

    def preempt(pid):  # as Slurm does: the signal goes to every process of the job
        with open(f"/proc/{pid}/stat") as f:
            submitit_process = int(f.read().rsplit(")", 1)[1].split()[1])
        os.kill(pid, signal.SIGUSR2)  # ignored by train.py
        os.kill(submitit_process, signal.SIGUSR2)
        deadline = time.time() + 120
        while "Calling checkpoint method" not in submitit_logs():  # the sweep's checkpoint()
            assert time.time() < deadline, "submitit never called the checkpoint method"
            time.sleep(0.05)
        time.sleep(1.0)  # which sends SIGTERM to train.py, handled once it runs again

    preempted = run_dir(out, "CoOp", 1)
    stop_in_second_epoch(preempted, preempt)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output[-3000:]
    assert "2 finished" not in output and "4 finished" in output
    with open(osp.join(preempted, sweep.JOB_LOG)) as f:
        log = f.read()
    assert "SIGTERM received" in log and "Resuming epoch 2 after its batch" in log
    assert "Requeued job" in submitit_logs()

    # Each interrupted run ends with the weights of the same run uninterrupted in the other sweep.
    local_out = local_sweep[0]
    for seed, interrupted, whole in ((1, out, local_out), (2, local_out, out)):
        a, b = weights(run_dir(interrupted, "CoOp", seed)), weights(run_dir(whole, "CoOp", seed))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The two seeds differ, so the comparison can fail.
    assert not torch.equal(weights(run_dir(out, "CoOp", 1))["ctx"], weights(run_dir(out, "CoOp", 2))["ctx"])


RECORDER = """#!{python}
import json, os, sys
if sys.argv[1:2] == ["train.py"]:
    with open(os.environ["RECORD"], "a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
else:
    os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def test_dry_run_commands_are_the_protocol_scripts_commands(tmp_path, capsys):
    """base2new, fewshot and xd: the scripts run with PYTHON recording each train.py call."""
    recorder = tmp_path / "python"
    recorder.write_text(RECORDER.format(python=sys.executable))
    recorder.chmod(0o755)
    (tmp_path / "data").mkdir()
    extra = ["OPTIM.MAX_EPOCH", "3", "INPUT.SIZE", "(32,32)"]
    env = dict(os.environ, DATA=str(tmp_path / "data"), OUTPUT=str(tmp_path / "out"),
               PYTHON=str(recorder), RECORD=str(tmp_path / "record"), EXTRA_OPTS=" ".join(extra))
    common = ["--root", env["DATA"], "--output", env["OUTPUT"], "--opts", *extra]
    grids = [["base2new", "--methods", "CoOp", "E2MIM", "--datasets", "caltech101", "--seeds", "1"],
             ["fewshot", "--methods", "CoOp", "--datasets", "dtd", "--seeds", "1", "--shots", "1", "8"],
             ["xd", "--methods", "CoOp", "--datasets", "dtd", "--seeds", "2"]]
    planned = []  # before any training run exists: the tests load the configs' last epoch
    for grid in grids:
        assert sweep.main([*grid, *common, "--dry-run"]) == 0
        planned += [shlex.split(line)[1:] for line in capsys.readouterr().out.splitlines()]

    def script(path, *args):
        subprocess.run(["bash", osp.join(REPO, "scripts", path), *args], env=env, check=True,
                       capture_output=True)

    for method in ("coop", "e2mim"):
        script(f"{method}/base2new_train.sh", "caltech101", "1")
    for shots in ("1", "8"):
        script("coop/fewshot.sh", "dtd", "1", shots)
    script("coop/xd_train.sh", "2")
    with open(env["RECORD"]) as f:  # the training runs "finish" at the epoch their config says
        for argv in map(json.loads, f):
            folder = argv[argv.index("--output-dir") + 1]
            os.makedirs(osp.join(folder, "prompt_learner"))
            with open(osp.join(folder, "prompt_learner", "checkpoint"), "w") as g:
                g.write("model.pth.tar-3\n")
            with open(osp.join(folder, "log.txt"), "w") as g:
                g.write("Finish training\n* accuracy: 50.0%\n")
    for method in ("coop", "e2mim"):
        script(f"{method}/base2new_test.sh", "caltech101", "1")
    script("coop/xd_test.sh", "dtd", "2")
    with open(env["RECORD"]) as f:
        recorded = [json.loads(line) for line in f]
    assert sorted(recorded) == sorted(planned) and len(planned) == 8
    loaded = [c[c.index("--load-epoch") + 1] for c in planned if "--load-epoch" in c]
    assert loaded == ["3", "3", "3"]
