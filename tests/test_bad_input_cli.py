"""train.py refuses mistakes with messages that name the problem and the fix."""
import os.path as osp

import pytest

import tools.toy_linear  # noqa: F401  (registers the toy trainer and dataset in this process)
import train
from tests.conftest import run_cli, toy_args


def _error(proc):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stderr


def _usage_error(args):
    """Mistakes caught before any work are checked in-process (no interpreter start-up)."""
    with pytest.raises(train.UsageError) as info:
        train.main(train.build_parser().parse_args([str(a) for a in args]))
    return str(info.value)


def test_unknown_trainer_names_registered_ones_closest_first(tmp_path, toy_root):
    args = toy_args(toy_root, str(tmp_path / "o"))
    args[args.index("ToyLinear")] = "ToyLinaer"
    err = _usage_error(args)
    assert "[ToyLinaer]" in err and "do you mean [ToyLinear]" in err
    assert "['ToyLinear'" in err  # the list, closest first


def test_unknown_dataset(tmp_path, toy_root):
    err = _usage_error(toy_args(toy_root, str(tmp_path / "o"), "DATASET.NAME", "ToyColour"))
    assert "unknown dataset" in err and "do you mean [ToyColours]" in err


def test_missing_config_file_names_the_path(tmp_path, toy_root):
    args = toy_args(toy_root, str(tmp_path / "o"))
    args[args.index("configs/toy/toy_linear.yaml")] = "configs/toy/nope.yaml"
    err = _usage_error(args)
    assert "--config-file" in err and "configs/toy/nope.yaml" in err


def test_unknown_override_key_names_the_key(tmp_path, toy_root):
    err = _usage_error(toy_args(toy_root, str(tmp_path / "o"), "OPTIM.LRR", "0.1"))
    assert "OPTIM.LRR" in err and "OPTIM.LR" in err


def test_unknown_key_in_config_file(tmp_path, toy_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  NAMEE: sgd\n")
    args = toy_args(toy_root, str(tmp_path / "o"))
    args[args.index("configs/toy/toy_linear.yaml")] = str(bad)
    err = _usage_error(args)
    assert "OPTIM.NAMEE" in err and str(bad) in err


def test_odd_override_list(tmp_path, toy_root):
    err = _usage_error(toy_args(toy_root, str(tmp_path / "o"), "OPTIM.LR"))
    assert "KEY VALUE" in err


def test_eval_only_without_model_dir(tmp_path, toy_root):
    err = _error(run_cli(toy_args(toy_root, str(tmp_path / "o"), "--eval-only"), check=False))
    assert "--eval-only needs --model-dir" in err


def test_finished_output_dir_is_refused_not_overwritten(tmp_path, toy_root):
    out = str(tmp_path / "run")
    run_cli(toy_args(toy_root, out, "OPTIM.MAX_EPOCH", "1"))
    before = open(osp.join(out, "model", "model.pth.tar-1"), "rb").read()
    err = _usage_error(toy_args(toy_root, out, "OPTIM.MAX_EPOCH", "1"))
    assert out in err and "finished run" in err
    assert open(osp.join(out, "model", "model.pth.tar-1"), "rb").read() == before


def test_eval_only_with_missing_epoch_names_the_file(tmp_path, toy_root):
    out = str(tmp_path / "run")
    run_cli(toy_args(toy_root, out, "OPTIM.MAX_EPOCH", "1"))
    proc = run_cli(toy_args(toy_root, str(tmp_path / "e"), "--eval-only", "--model-dir", out,
                            "--load-epoch", "7"), check=False)
    assert proc.returncode != 0
    assert osp.join(out, "model", "model.pth.tar-7") in proc.stderr
