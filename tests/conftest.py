"""Shared fixtures: running train.py as a user would, on generated data."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def run_cli(args, env_extra=None, entry="tools/train_toy.py", check=True, timeout=300):
    """Run a training entry point in a subprocess; return the CompletedProcess."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    if env_extra:
        env.update(env_extra)
    proc = subprocess.run([sys.executable, osp.join(REPO, entry)] + [str(a) for a in args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {args}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def toy_args(root, output_dir, *extra, seed=1):
    return ["--root", root, "--seed", seed, "--trainer", "ToyLinear",
            "--dataset-config-file", "configs/toy/toy_colours.yaml",
            "--config-file", "configs/toy/toy_linear.yaml",
            "--output-dir", output_dir, *extra]


def parse_accuracy(text):
    """The last ``* accuracy: X%`` value printed by the evaluator."""
    values = [float(line.split(":")[1].strip().rstrip("%"))
              for line in text.splitlines() if line.startswith("* accuracy:")]
    assert values, f"no accuracy line in output:\n{text[-2000:]}"
    return values[-1]


@pytest.fixture
def toy_root(tmp_path):
    return str(tmp_path / "data")
