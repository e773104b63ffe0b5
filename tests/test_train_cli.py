"""train.py end to end with a trainer and dataset written against upstream Dassl's API."""
import glob
import os
import os.path as osp

import torch

from tests.helpers import parse_accuracy, run_cli, toy_args


def _weights(output_dir, epoch):
    ckpt = torch.load(osp.join(output_dir, "model", f"model.pth.tar-{epoch}"), weights_only=True)
    return ckpt["state_dict"]


def test_train_two_epochs_then_eval_only_reproduces_accuracy(tmp_path, toy_root):
    out = str(tmp_path / "run")
    proc = run_cli(toy_args(toy_root, out))
    assert sorted(os.listdir(osp.join(out, "model"))) == ["checkpoint", "model.pth.tar-2"]
    assert open(osp.join(out, "model", "checkpoint")).read() == "model.pth.tar-2\n"
    train_acc = parse_accuracy(proc.stdout)
    assert 25.0 < train_acc < 100.0  # learnt something, not a trivial task
    # log.txt holds what was printed, including arguments, config and environment
    log = open(osp.join(out, "log.txt")).read()
    assert "** Arguments **" in log and "** Config **" in log and "PyTorch:" in log
    assert "eta" in log and "epoch [2/2]" in log
    assert glob.glob(osp.join(out, "tensorboard", "events.out.tfevents.*"))

    eval_out = str(tmp_path / "eval")
    proc = run_cli(toy_args(toy_root, eval_out, "--eval-only", "--model-dir", out,
                            "--load-epoch", "2"))
    assert parse_accuracy(proc.stdout) == train_acc
    assert "Load " in proc.stdout and "model.pth.tar-2" in proc.stdout


def test_same_seed_same_numbers(tmp_path, toy_root):
    a = run_cli(toy_args(toy_root, str(tmp_path / "a")))
    b = run_cli(toy_args(toy_root, str(tmp_path / "b")))
    def losses(text):
        return [line.split(" time ")[0] + line.split(" data ")[1].split(" eta ")[0][20:]
                               for line in text.splitlines() if line.startswith("epoch [")]
    assert losses(a.stdout) == losses(b.stdout) and len(losses(a.stdout)) == 6
    wa, wb = _weights(str(tmp_path / "a"), 2), _weights(str(tmp_path / "b"), 2)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_kill_after_epoch_one_and_resume_gives_identical_weights(tmp_path, toy_root):
    extra = ["OPTIM.MAX_EPOCH", "3"]
    straight = str(tmp_path / "straight")
    run_cli(toy_args(toy_root, straight, *extra))

    resumed = str(tmp_path / "resumed")
    killed = run_cli(toy_args(toy_root, resumed, *extra), env_extra={"TOY_STOP_AFTER_EPOCH": "1"},
                     check=False)
    assert killed.returncode == 3
    assert os.listdir(osp.join(resumed, "model")) != []
    assert open(osp.join(resumed, "model", "checkpoint")).read() == "model.pth.tar-1\n"

    second = run_cli(toy_args(toy_root, resumed, *extra))  # the same command again
    assert "Previous epoch: 1" in second.stdout
    assert "epoch [1/3]" not in second.stdout and "epoch [2/3]" in second.stdout
    a, b = _weights(straight, 3), _weights(resumed, 3)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the interrupted run's first log is kept; the resumed one is time-stamped
    logs = sorted(f for f in os.listdir(resumed) if f.startswith("log.txt"))
    assert len(logs) == 2 and logs[0] == "log.txt"
    # the folder ends as upstream's would: only the last epoch's checkpoint
    assert sorted(os.listdir(osp.join(resumed, "model"))) == ["checkpoint", "model.pth.tar-3"]


def test_checkpoint_freq_keeps_upstream_files(tmp_path, toy_root):
    out = str(tmp_path / "run")
    run_cli(toy_args(toy_root, out, "OPTIM.MAX_EPOCH", "4", "TRAIN.CHECKPOINT_FREQ", "2"))
    assert sorted(os.listdir(osp.join(out, "model"))) == [
        "checkpoint", "model.pth.tar-2", "model.pth.tar-4"]


def test_best_val_selection_and_eval_of_best(tmp_path, toy_root):
    out = str(tmp_path / "run")
    proc = run_cli(toy_args(toy_root, out, "TEST.FINAL_MODEL", "best_val"))
    assert "Evaluate on the *val* set" in proc.stdout
    assert "model-best.pth.tar" in os.listdir(osp.join(out, "model"))
    final = parse_accuracy(proc.stdout)
    proc = run_cli(toy_args(toy_root, str(tmp_path / "eval"), "--eval-only", "--model-dir", out))
    assert parse_accuracy(proc.stdout) == final


def test_seed_zero_means_not_seeded_like_coop(tmp_path, toy_root):
    proc = run_cli(toy_args(toy_root, str(tmp_path / "run"), "OPTIM.MAX_EPOCH", "1", seed=0))
    assert "SEED: -1" in proc.stdout
    assert "Setting fixed seed" not in proc.stdout
