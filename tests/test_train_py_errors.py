"""train.py refuses mistakes with messages that name the problem and the fix."""
import os.path as osp

import pytest

import tools.toy_linear  # noqa: F401  (registers the toy trainer and dataset in this process)
import train
from tests.helpers import run_cli, toy_args


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


# ---------------------------------------------------------------- prompt-tuning settings
def _caltech_args(data, checkpoint, output_dir, trainer="CoOp", *opts):
    from tests.helpers import CONFIGS, tiny_opts

    return ["--root", data, "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/caltech101.yaml",
            "--config-file", CONFIGS[trainer], "--output-dir", output_dir,
            *tiny_opts(checkpoint), *opts]


@pytest.mark.parametrize("trainer, opts, message", [
    ("CoOp", ["DATASET.NUM_SHOTS", "0"], "DATASET.NUM_SHOTS must be -1 (all images) or at least "
                                         "1; got 0"),
    ("CoOp", ["DATASET.NUM_SHOTS", "-4"], "DATASET.NUM_SHOTS must be -1"),
    ("CoOp", ["DATALOADER.TRAIN_X.BATCH_SIZE", "0"], "DATALOADER.TRAIN_X.BATCH_SIZE must be at "
                                                     "least 1; got 0"),
    ("CoOp", ["TRAINER.COOP.N_CTX", "80"], "TRAINER.COOP.N_CTX must be between 1 and 73"),
    ("KgCoOp", ["TRAINER.KGCOOP.CTX_INIT", "_".join(["a"] * 75)],
     "TRAINER.KGCOOP.CTX_INIT has 75 words; at most 73 fit"),
    ("CoOp", ["DATASET.SUBSAMPLE_CLASSES", "half"], "DATASET.SUBSAMPLE_CLASSES must be one of "
                                                    "all, base, new; got 'half'"),
    ("CoOp", ["MODEL.BACKBONE.NAME", "ViT-B/16"], "INPUT.SIZE (32, 32) does not fit backbone "
                                                  "ViT-B/16, which takes 224x224 images"),
    ("CoOp", ["TRAINER.COOP.PREC", "fp8"], "TRAINER.COOP.PREC must be one of fp16, fp32, amp; "
                                           "got 'fp8'"),
    ("E2MIM", ["TRAINER.E2MIM.MIXUP_LEVEL", "pixel"], "TRAINER.E2MIM.MIXUP_LEVEL must be one of "
                                                      "feature, image; got 'pixel'"),
    ("E2MIM", ["TRAINER.E2MIM.ESTIMATOR", "mine"], "TRAINER.E2MIM.ESTIMATOR must be one of"),
    ("E2MIM", ["TRAINER.E2MIM.INFERENCE", "max"], "TRAINER.E2MIM.INFERENCE must be one of soft, "
                                                  "ensemble; got 'max'"),
    ("ProGrad", ["LOSS.NAME", ""], "ProGrad's objective is LOSS.NAME \"prograd\""),
    ("ProGrad", ["TRAINER.COOP.N_CTX", "3"], "from the template words 'a photo of a' (4 words): "
                                             "TRAINER.COOP.N_CTX must be at least 4; got 3"),
    ("ProGrad", ["LOSS.T", "0.0"], "LOSS.T (the distillation temperature) must be positive"),
    ("CoOp", ["TRAINER.COOP.CTX_INIT", "True"], "True is ProGrad's setting"),
    # Every method's context is checked through its own config node, N_CTX_TEXT included.
    ("IVLP", ["TRAINER.IVLP.CTX_INIT", "", "TRAINER.IVLP.N_CTX_TEXT", "80"],
     "TRAINER.IVLP.N_CTX_TEXT must be between 1 and 73"),
    ("MaPLe", ["TRAINER.MAPLE.CTX_INIT", "_".join(["a"] * 75)],
     "TRAINER.MAPLE.CTX_INIT has 75 words; at most 73 fit"),
    ("ProGrad", ["TRAINER.COOP.N_CTX", "80"], "TRAINER.COOP.N_CTX must be between 1 and 73"),
    ("E2MIM", ["TRAINER.E2MIM.VIEWS", "probabilities", "DATALOADER.TRAIN_X.BATCH_SIZE", "1"],
     "TRAINER.E2MIM.W_MI > 0 needs "
     "DATALOADER.TRAIN_X.BATCH_SIZE >= 2"),
])
def test_bad_settings_are_refused_before_any_work(tiny_clip, fake_caltech, tmp_path, monkeypatch,
                                                  trainer, opts, message):
    from datasets.errors import ConfigError

    monkeypatch.setattr("sys.stdout", __import__("sys").stdout)  # train.main tees stdout to a log
    output_dir = str(tmp_path / "run")
    args = _caltech_args(fake_caltech, tiny_clip["tiny-ViT"], output_dir, trainer, *opts)
    with pytest.raises(ConfigError) as info:
        train.main(train.build_parser().parse_args(args))
    assert message in str(info.value)
    assert not osp.exists(osp.join(output_dir, "prompt_learner"))  # nothing trained or saved


def test_a_context_too_long_for_the_class_names_is_refused(tiny_clip, fake_caltech, tmp_path,
                                                           monkeypatch):
    from datasets.errors import ConfigError

    monkeypatch.setattr("sys.stdout", __import__("sys").stdout)
    args = _caltech_args(fake_caltech, tiny_clip["tiny-ViT"], str(tmp_path / "run"), "CoOp",
                         # 40 words (within the word limit), but each several BPE tokens
                         "TRAINER.COOP.CTX_INIT", "_".join(["xylophonists"] * 40))
    with pytest.raises(ConfigError, match=r"the prompt '(xylophonists ?){40}' takes \d+ "
                                          r"tokens; CLIP's context holds 77: use a shorter "
                                          r"context \(N_CTX, CTX_INIT\)"):
        train.main(train.build_parser().parse_args(args))


def test_bad_and_missing_images_name_the_file_and_the_dataset(tiny_clip, tmp_path, monkeypatch):
    import glob
    import json

    from tests import dataset_trees

    monkeypatch.setattr("sys.stdout", __import__("sys").stdout)
    root = str(tmp_path / "data")
    dataset_trees.caltech101(root, per_class=6)
    args = _caltech_args(root, tiny_clip["tiny-ViT"], str(tmp_path / "a"), "CoOp",
                         "OPTIM.MAX_EPOCH", "1")
    train.main(train.build_parser().parse_args(args + ["TEST.NO_TEST", "True"]))  # writes the split
    split_file = osp.join(root, "caltech-101", "split_zhou_Caltech101.json")
    with open(split_file) as f:
        split = json.load(f)
    broken = osp.join(root, "caltech-101", "101_ObjectCategories", split["train"][0][0])
    with open(broken, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(OSError) as info:
        train.main(train.build_parser().parse_args(_caltech_args(
            root, tiny_clip["tiny-ViT"], str(tmp_path / "b"), "CoOp", "OPTIM.MAX_EPOCH", "1")))
    assert "dataset Caltech101" in str(info.value) and broken in str(info.value)

    missing = glob.glob(osp.join(root, "caltech-101", "101_ObjectCategories", "*", "*.jpg"))[0]
    import os

    os.remove(missing)
    with pytest.raises(FileNotFoundError) as info:
        train.main(train.build_parser().parse_args(_caltech_args(
            root, tiny_clip["tiny-ViT"], str(tmp_path / "c"), "CoOp")))
    assert split_file in str(info.value) and missing in str(info.value)


def test_classes_with_fewer_images_than_shots_are_reported_once(tiny_clip, fake_caltech, tmp_path,
                                                                capsys):
    from tests.helpers import make_trainer

    make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], "DATASET.NUM_SHOTS", "4")
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("Warning: class")]
    # 3 train and 1 val image per class: each class is reported once (not for train and val).
    assert len(warnings) == 4
    assert "Warning: class 'face' has 3 images, fewer than the 4 shots requested; using all 3" \
        in warnings


def _config_args(tmp_path, toy_root, path):
    args = toy_args(toy_root, str(tmp_path / "o"))
    args[args.index("configs/toy/toy_linear.yaml")] = str(path)
    return args


def test_python_config_is_refused_without_the_opt_in_and_runs_nothing(tmp_path, toy_root, monkeypatch):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
                    "cfg = {'OPTIM': {'LR': 0.5}}\n")
    monkeypatch.delenv("DASSL_TRUST_CHECKPOINT", raising=False)
    err = _usage_error(_config_args(tmp_path, toy_root, evil))
    assert str(evil) in err and "Python config, a program" in err and "--trust-checkpoint" in err
    assert "\n" not in err and not marker.exists() and not (tmp_path / "o").exists()
    monkeypatch.setenv("DASSL_TRUST_CHECKPOINT", "false")
    _usage_error(_config_args(tmp_path, toy_root, evil))
    assert not marker.exists()
    # the one opt-in: the file is run, as yacs runs it
    monkeypatch.setenv("DASSL_TRUST_CHECKPOINT", "yes")
    args = [str(a) for a in _config_args(tmp_path, toy_root, evil)]
    cfg = train.setup_cfg(train.build_parser().parse_args(args))
    assert marker.exists() and cfg.OPTIM.LR == 0.5


@pytest.mark.parametrize("text, why", [
    ("OPTIM:\n\tLR: 0.1\n", "not valid YAML: found character '\\t' that cannot start any token at line 2, "
                            "column 1; YAML indents with spaces, not tabs"),
    ("OPTIM: [1,\n", "not valid YAML: expected the node content, but found '<stream end>' at line 2"),
    ("OPTIM:\n  LR: 0.1\n LR: 2\n", "not valid YAML:"),
    ("- OPTIM\n- LR\n", "the file holds a YAML list; a config is a mapping of keys"),
    ("42\n", "the file holds a YAML int")])
def test_malformed_yaml_is_one_line_naming_the_file_and_the_problem(tmp_path, toy_root, text, why):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    err = _usage_error(_config_args(tmp_path, toy_root, bad))
    assert err.startswith(f"--config-file {bad}: ") and why in err and "\n" not in err


def test_unsupported_config_extension_is_named(tmp_path, toy_root):
    odd = tmp_path / "cfg.json"
    odd.write_text("{}")
    err = _usage_error(_config_args(tmp_path, toy_root, odd))
    assert str(odd) in err and "YAML (.yaml or .yml)" in err
