"""Train and test every trainable method of ours on upstream Dassl.pytorch, with our
dassl/ off the path: the check that trainers/ and datasets/ use only upstream's API.

    git clone https://github.com/KaiyangZhou/Dassl.pytorch /tmp/up/Dassl.pytorch
    python -m tools.upstream_dassl_check --dassl /tmp/up/Dassl.pytorch

The repository is copied without dassl/ into a temporary folder, and each method
trains one epoch there on a tiny CLIP and a fake Caltech101 (both generated) in a
process whose path holds that copy and the upstream checkout only. The run is
train.py's (``runs.command.setup_cfg``, then ``build_trainer``, ``train``, ``test``) with
nothing of our dassl/. Upstream's process gets two start-up shims, as in
tools/record_upstream_golden.py: a stand-in for the optional ``wilds`` package its
dataset registry imports, and its warm-up schedulers' ``verbose`` argument, which
current torch no longer takes. Prints one line per method and exits non-zero when
one fails.
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile

from tests.helpers import CONFIGS, REPO, tiny_opts, write_tiny_clip

METHODS = ["CoOp", "CoCoOp", "KgCoOp", "ProGrad", "IVLP", "MaPLe", "PromptSRC", "E2MIM"]
# The tiny CLIP has 2 layers: deep prompts at most that deep.
DEPTH = {"IVLP": ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2"],
         "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "2"],
         "PromptSRC": ["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                       "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2", "TRAINER.PROMPTSRC.GPA_MEAN", "1"]}
ONE_EPOCH = ["OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
             "DATALOADER.TEST.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "1"]

_DRIVER = """
import importlib.machinery, sys, types
import torch
wilds_datasets = "dassl.data.datasets.dg.wilds"
sys.modules[wilds_datasets] = types.ModuleType(wilds_datasets)
sys.modules[wilds_datasets].__spec__ = importlib.machinery.ModuleSpec(wilds_datasets, None)
_scheduler_init = torch.optim.lr_scheduler.LRScheduler.__init__
def scheduler_init(self, optimizer, last_epoch=-1, verbose=False):
    _scheduler_init(self, optimizer, last_epoch)
torch.optim.lr_scheduler.LRScheduler.__init__ = scheduler_init
import dassl
assert "{upstream}" in dassl.__file__, dassl.__file__
import datasets, trainers
from dassl.engine import build_trainer
from dassl.utils import set_random_seed
from runs.command import build_parser, setup_cfg
cfg = setup_cfg(build_parser().parse_args(sys.argv[1:]))
set_random_seed(cfg.SEED)
trainer = build_trainer(cfg)
trainer.train()
print("dassl from", dassl.__file__)
"""


def copy_without_dassl(folder):
    """The repository's tracked and new files, less dassl/ (and the caches)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in files:
        if name and not name.startswith("dassl/") and osp.isfile(osp.join(REPO, name)):
            os.makedirs(osp.dirname(osp.join(folder, name)), exist_ok=True)
            shutil.copy2(osp.join(REPO, name), osp.join(folder, name))


def run_method(name, copy, upstream, data, clip_file, output):
    args = ["--root", data, "--seed", "1", "--trainer", name,
            "--dataset-config-file", "configs/datasets/caltech101.yaml",
            "--config-file", CONFIGS[name], "--output-dir", osp.join(output, name),
            *tiny_opts(clip_file), *ONE_EPOCH, *DEPTH.get(name, [])]
    env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{upstream}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _DRIVER.format(upstream=upstream), *args],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=900)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dassl", required=True, help="a checkout of KaiyangZhou/Dassl.pytorch")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    args = parser.parse_args(argv)
    upstream = osp.abspath(args.dassl)
    if not osp.isfile(osp.join(upstream, "dassl", "engine", "trainer.py")):
        sys.exit(f"--dassl {args.dassl}: not a Dassl.pytorch checkout (no dassl/engine/trainer.py)")
    from tests import dataset_trees

    failed = []
    with tempfile.TemporaryDirectory() as work:
        copy = osp.join(work, "repo")
        copy_without_dassl(copy)
        data = osp.join(work, "data")
        dataset_trees.caltech101(data, per_class=6)
        clip_file = write_tiny_clip(osp.join(work, "tiny-ViT.pt"))
        for name in args.methods:
            proc = run_method(name, copy, upstream, data, clip_file, osp.join(work, "output"))
            accuracy = [line for line in proc.stdout.splitlines() if line.startswith("* accuracy")]
            if proc.returncode or not accuracy or "dassl from " + upstream not in proc.stdout:
                failed.append(name)
                print(f"{name}: FAILED\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            else:
                print(f"{name}: trained and tested one epoch on upstream Dassl ({accuracy[-1][2:]})")
    if failed:
        sys.exit(f"failed on upstream Dassl: {', '.join(failed)}")


if __name__ == "__main__":
    main()
