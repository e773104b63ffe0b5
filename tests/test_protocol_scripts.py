"""scripts/ and parse_test_res.py end to end: fake data, tiny backbones, the real train.py."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from tests import dataset_trees
from tests.helpers import REPO, parse_accuracy, run_cli, tiny_opts

EPOCHS = 2


def script(path, *args, env, check=True):
    proc = subprocess.run(["bash", osp.join(REPO, "scripts", path), *map(str, args)], cwd="/",
                          env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{path} {args} failed ({proc.returncode})\n{proc.stdout[-3000:]}"
                             f"\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def protocol_env(tmp_path, tiny_clip):
    data = tmp_path / "data"
    dataset_trees.caltech101(str(data), per_class=6)
    dataset_trees.imagenet(str(data), per_class=4)
    env = dict(os.environ, DATA=str(data), OUTPUT=str(tmp_path / "output"),
               PYTHON=sys.executable, OMP_NUM_THREADS="1",
               EXTRA_OPTS=" ".join(tiny_opts(tiny_clip["tiny-ViT"])).replace("(32, 32)", "(32,32)")
               + f" OPTIM.MAX_EPOCH {EPOCHS}")
    return env


DEPTH = {"PromptSRC": "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION 2 TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT 2"}


def final_accuracy(run_dir):
    with open(osp.join(run_dir, "log.txt")) as f:
        return parse_accuracy(f.read())


@pytest.mark.parametrize("method, trainer, cfg", [
    ("coop", "CoOp", "vit_b16_ctxv1"),
    ("cocoop", "CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1"),
    ("kgcoop", "KgCoOp", "vit_b16_ep100_ctxv1"),
    ("e2mim", "E2MIM", "vit_b16_ep50_ctxv1"),
    # The deep-prompt methods share this path (whole-model checkpoints under upstream's
    # names); PromptSRC, which also swaps in its GPA model, stands for them (IVLP and MaPLe
    # ran here too, ~50 s each on the shared machine: not repeated in the suite).
    ("promptsrc", "PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx"),
])
def test_base_to_new_scripts_and_table(protocol_env, method, trainer, cfg):
    if trainer in DEPTH:  # the tiny model has 2 layers per tower
        protocol_env["EXTRA_OPTS"] += " " + DEPTH[trainer]
    out = protocol_env["OUTPUT"]
    seeds = (1, 2) if method == "coop" else (1,)
    for seed in seeds:
        script(f"{method}/base2new_train.sh", "caltech101", seed, env=protocol_env)
        script(f"{method}/base2new_test.sh", "caltech101", seed, env=protocol_env)
    common = f"caltech101/shots_16/{trainer}/{cfg}/seed1"
    train_dir = osp.join(out, "base2new", "train_base", common)
    test_dir = osp.join(out, "base2new", "test_new", common)
    folder = {"IVLP": "VLPromptLearner", "MaPLe": "MultiModalPromptLearner",
              "PromptSRC": "VLPromptLearner"}.get(trainer, "prompt_learner")  # upstream's names
    assert osp.isfile(osp.join(train_dir, folder, f"model.pth.tar-{EPOCHS}"))
    if trainer == "E2MIM":  # the critic is checkpointed too (and resumed), not used to test
        assert osp.isfile(osp.join(train_dir, "critic", f"model.pth.tar-{EPOCHS}"))
    base, new = final_accuracy(train_dir), final_accuracy(test_dir)
    with open(osp.join(test_dir, "log.txt")) as f:
        test_log = f.read()
    assert "SUBSAMPLE_CLASSES: new" in test_log and f"model.pth.tar-{EPOCHS}" in test_log

    # A finished job is skipped.
    again = script(f"{method}/base2new_train.sh", "caltech101", 1, env=protocol_env)
    assert "Skip this job" in again.stdout

    # --eval-only on the base classes reproduces the training run's final accuracy.
    extra = protocol_env["EXTRA_OPTS"].split()
    proc = run_cli(["--root", protocol_env["DATA"], "--seed", 1, "--trainer", trainer,
                    "--dataset-config-file", "configs/datasets/caltech101.yaml",
                    "--config-file", f"configs/trainers/{trainer}/{cfg}.yaml",
                    "--output-dir", osp.join(out, "eval_base"), "--model-dir", train_dir,
                    "--load-epoch", EPOCHS, "--eval-only", *extra,
                    "DATASET.NUM_SHOTS", 16, "DATASET.SUBSAMPLE_CLASSES", "base"],
                   entry="train.py")
    assert parse_accuracy(proc.stdout) == base

    table = subprocess.run([sys.executable, "parse_test_res.py", osp.join(out, "base2new"),
                            "--base2new", "--format", "markdown"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    row = next(line for line in table.splitlines() if line.startswith("| caltech101"))
    assert f"| {len(seeds)}/{len(seeds)}" in row
    if len(seeds) == 1:
        harmonic = 2 * base * new / (base + new) if base + new else 0.0
        assert f"{base:.2f} +- 0.00" in row and f"{new:.2f} +- 0.00" in row
        assert row.rstrip(" |").endswith(f"{harmonic:.2f}")
    assert re.search(r"\| average \(1 datasets\)", table)


def test_cross_dataset_fewshot_and_zeroshot_scripts(protocol_env):
    out = protocol_env["OUTPUT"]
    script("coop/xd_train.sh", 1, env=protocol_env)
    script("coop/xd_test.sh", "caltech101", 1, env=protocol_env)
    model_dir = osp.join(out, "imagenet", "CoOp", "vit_b16_ep50_ctxv1_16shots", "seed1")
    assert osp.isfile(osp.join(model_dir, "prompt_learner", f"model.pth.tar-{EPOCHS}"))
    xd_dir = osp.join(out, "evaluation", "CoOp", "vit_b16_ep50_ctxv1_16shots", "caltech101", "seed1")
    final_accuracy(xd_dir)

    script("cocoop/fewshot.sh", "caltech101", 1, 2, env=protocol_env)
    fewshot_dir = osp.join(out, "caltech101", "CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1_2shots",
                           "seed1")
    with open(osp.join(fewshot_dir, "log.txt")) as f:
        assert re.search(r"# train_x\s+8\b", f.read())  # 2 shots x 4 classes

    script("zsclip/zeroshot.sh", "caltech101", "new", env=protocol_env)
    zs_dir = osp.join(out, "ZeroshotCLIP", "vit_b16", "caltech101", "new")
    with open(osp.join(zs_dir, "log.txt")) as f:
        log = f.read()
    assert "a photo of a" in log and re.search(r"# classes\s+2\b", log)

    parsed = subprocess.run([sys.executable, "parse_test_res.py", osp.dirname(xd_dir)],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert f"* accuracy: {final_accuracy(xd_dir):.2f}% +- 0.00%" in parsed


def test_scripts_refuse_bad_arguments(protocol_env):
    env = dict(protocol_env)
    del env["DATA"]
    proc = script("coop/base2new_train.sh", "caltech101", 1, env=env, check=False)
    assert proc.returncode == 2 and "DATA is not set" in proc.stderr
    proc = script("coop/base2new_train.sh", "caltech101", env=protocol_env, check=False)
    assert proc.returncode == 2 and "expected DATASET SEED" in proc.stderr
    proc = script("coop/fewshot.sh", "caltech101", 1, 3, env=protocol_env, check=False)
    assert proc.returncode == 2 and "SHOTS must be 1, 2, 4, 8 or 16" in proc.stderr
    proc = script("coop/base2new_test.sh", "caltech101", 1, env=protocol_env, check=False)
    assert proc.returncode == 2 and "no finished training run" in proc.stderr
