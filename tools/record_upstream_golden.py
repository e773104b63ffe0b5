"""Record the upstream baselines' training trajectories as golden test data.

    git clone https://github.com/KaiyangZhou/CoOp /tmp/up/CoOp
    git clone https://github.com/KaiyangZhou/Dassl.pytorch /tmp/up/Dassl.pytorch
    git clone https://github.com/htyao89/KgCoOp /tmp/up/KgCoOp
    python -m tools.record_upstream_golden --coop /tmp/up/CoOp \
        --dassl /tmp/up/Dassl.pytorch --kgcoop /tmp/up/KgCoOp

CoOp and CoCoOp run from the CoOp checkout on Dassl.pytorch; KgCoOp from its own
checkout on the Dassl fork it ships (``Dassl.ProGrad.pytorch``, which its README
installs). Each baseline trains with upstream's ``train.py``, its published config and
its scripts' options, changed only where the tiny setting needs it (``run_options``):
a tiny ViT CLIP and a fake Caltech101, both regenerated bit for bit from seeds,
4 shots, seed 1, fp32, on the CPU with one thread, 2 epochs, a checkpoint every
epoch and a loss line every batch. ``tests/data/golden/<trainer>.json`` then holds the learned tensors
after each epoch, the loss lines, the test accuracy, fingerprints of the inputs, and
the command, commits, versions and runtime shims that produced them.
``tests/test_golden.py`` trains our trainers the same way and compares (no upstream
code needed).

The upstream code runs unchanged; ``UPSTREAM_SHIMS`` lists what its process patches
at start-up so that it runs on the CPU with current torch.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

GOLDEN_DIR = osp.join(REPO, "tests", "data", "golden")
SEED = 1  # --seed of every run
DATA_SEED = 0  # the fake Caltech101's pixels
CLIP_SEED = 0  # the tiny CLIP's weights
CLIP_SHAPE = "tiny-ViT"
PER_CLASS = 10  # images per class folder: 5 train, 2 val, 3 test after the 50/20/30 split
SHOTS = 4
EPOCHS = 2


@dataclass(frozen=True)
class Baseline:
    name: str
    batch_size: int
    upstream_repo: str  # which checkout: "coop" or "kgcoop"
    upstream_config: str  # relative to the upstream train.py
    upstream_opts: tuple  # the options upstream's scripts pass, plus PREC
    our_opts: tuple  # ours for the same run (our config: tests.conftest.CONFIGS)
    learned: tuple  # the trained tensors of the saved prompt learner


BASELINES = {
    b.name: b for b in [
        Baseline("CoOp", 4, "coop", "configs/trainers/CoOp/vit_b16_ep50.yaml",
                 ("TRAINER.COOP.N_CTX", "16", "TRAINER.COOP.CSC", "False",
                  "TRAINER.COOP.CLASS_TOKEN_POSITION", "end", "TRAINER.COOP.PREC", "fp32"),
                 ("TRAINER.COOP.N_CTX", "16", "TRAINER.COOP.CSC", "False",
                  "TRAINER.COOP.CLASS_TOKEN_POSITION", "end", "TRAINER.COOP.PREC", "fp32"),
                 ("ctx",)),
        Baseline("CoCoOp", 1, "coop", "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
                 ("TRAINER.COCOOP.PREC", "fp32"),
                 ("TRAINER.COCOOP.PREC", "fp32"),
                 ("ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
                  "meta_net.linear2.weight", "meta_net.linear2.bias")),
        # Upstream's KgCoOp reads TRAINER.COOP (CTX_INIT True = "a photo of a"); ours TRAINER.KGCOOP.
        Baseline("KgCoOp", 4, "kgcoop", "configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml",
                 ("TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CSC", "False", "TRAINER.COOP.W", "8.0",
                  "TRAINER.COOP.CLASS_TOKEN_POSITION", "end", "TRAINER.COOP.PREC", "fp32"),
                 ("TRAINER.KGCOOP.N_CTX", "4", "TRAINER.KGCOOP.CSC", "False",
                  "TRAINER.KGCOOP.W", "8.0", "TRAINER.KGCOOP.PREC", "fp32"),
                 ("ctx",)),
    ]
}

UPSTREAM_SHIMS = [
    "torch.set_num_threads(1)",
    "Dassl.pytorch's WILDS datasets (dassl.data.datasets.dg.wilds) are an empty module: they "
    "import wilds and pandas, not installed here, and no golden run uses them",
    "no CUDA: torch.nn.Module.cuda and torch.Tensor.cuda return self (KgCoOp moves its "
    "second CLIP and the hand-crafted prompts' tokens to .cuda() unconditionally)",
    "torch.optim.lr_scheduler.LRScheduler.__init__ accepts and ignores a third argument, "
    "verbose (removed from torch; Dassl's warmup schedulers pass verbose=False)",
    "clip.clip._MODELS[BACKBONE] = <tiny CLIP file> and clip.clip._download returns that "
    "file for it (no download; the file is a state dict, loaded after torch.jit.load fails)",
]

# Run in the upstream process, with cwd = the folder of upstream's train.py.
_UPSTREAM_DRIVER = """
import importlib.machinery, os, runpy, sys, types
import torch
dassl, clip_file, backbone = sys.argv[1:4]
sys.argv = ["train.py"] + sys.argv[4:]
sys.path[:0] = [os.getcwd(), dassl]
torch.set_num_threads(1)
wilds_datasets = "dassl.data.datasets.dg.wilds"
sys.modules[wilds_datasets] = types.ModuleType(wilds_datasets)
sys.modules[wilds_datasets].__spec__ = importlib.machinery.ModuleSpec(wilds_datasets, None)
if not torch.cuda.is_available():
    torch.nn.Module.cuda = lambda self, device=None: self
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
_scheduler_init = torch.optim.lr_scheduler.LRScheduler.__init__
def scheduler_init(self, optimizer, last_epoch=-1, verbose=False):
    _scheduler_init(self, optimizer, last_epoch)
torch.optim.lr_scheduler.LRScheduler.__init__ = scheduler_init
from clip import clip
clip._MODELS[backbone] = clip_file
_download = clip._download
clip._download = lambda url, *args, **kwargs: url if url == clip_file else _download(url, *args, **kwargs)
runpy.run_path("train.py", run_name="__main__")
"""


def write_inputs(folder):
    """The fake Caltech101 and the tiny CLIP file under ``folder``: (data root, CLIP path)."""
    import torch

    from clip.shapes import random_state_dict
    from tests import dataset_trees

    root = osp.join(folder, "data")
    dataset_trees.caltech101(root, per_class=PER_CLASS, seed=DATA_SEED)
    clip_path = osp.join(folder, f"{CLIP_SHAPE}.pt")
    torch.save(random_state_dict(CLIP_SHAPE, seed=CLIP_SEED), clip_path)
    return root, clip_path


def fingerprints(root, clip_path):
    """SHA-256 of the images' pixels (with their paths) and of the CLIP weights: golden
    values apply only to inputs with these fingerprints (taken before a run writes its
    split files into the dataset folder)."""
    import numpy as np
    import torch
    from PIL import Image

    images = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(f for f in files if f.endswith(".jpg")):
            path = osp.join(folder, name)
            images.update(osp.relpath(path, root).encode())
            images.update(np.asarray(Image.open(path).convert("RGB")).tobytes())
    weights = hashlib.sha256()
    for key, value in sorted(torch.load(clip_path, weights_only=True).items()):
        weights.update(key.encode())
        weights.update(value.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return {"images_sha256": images.hexdigest(), "clip_sha256": weights.hexdigest()}


def run_options(baseline, backbone):
    """The trailing KEY VALUE options of a golden run (upstream's and ours share them)."""
    return ["DATASET.NUM_SHOTS", str(SHOTS), "OPTIM.MAX_EPOCH", str(EPOCHS),
            "DATALOADER.TRAIN_X.BATCH_SIZE", str(baseline.batch_size),
            "DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.NAME", backbone,
            "INPUT.SIZE", "(32, 32)", "TRAIN.CHECKPOINT_FREQ", "1", "TRAIN.PRINT_FREQ", "1",
            "USE_CUDA", "False"]


def train_args(root, config, output_dir, trainer):
    return ["--root", root, "--seed", str(SEED), "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/caltech101.yaml",
            "--config-file", config, "--output-dir", output_dir]


_STEP = re.compile(r"^epoch \[(\d+)/(\d+)\]\s*(?:batch )?\[(\d+)/(\d+)\]")
_METER = re.compile(r"(\w+) (-?[0-9.]+) \((-?[0-9.]+)\)")
_LR = re.compile(r"\blr (\S+)")


def loss_line(line):
    """A training step's printed line without its timings, in Dassl.pytorch's layout
    (``epoch [1/2] batch [3/4] loss 1.4528 (1.4199) acc 0.0000 (16.6667) lr 1.0000e-05``);
    None for other lines. Dassl.ProGrad (KgCoOp's) prints tabs, the ETA first and the
    learning rate with 6 digits: the same numbers, rewritten here."""
    step = _STEP.match(line)
    if not step:
        return None
    meters = [f"{n} {v} ({a})" for n, v, a in _METER.findall(line) if n not in ("time", "data")]
    lr = float(_LR.search(line).group(1))
    return "epoch [{}/{}] batch [{}/{}] ".format(*step.groups()) + " ".join(meters) + f" lr {lr:.4e}"


def read_run(stdout, output_dir, learned):
    """What a run leaves that golden tests compare: each training step's printed line
    without timings, the final test accuracy, and the learned tensors after each epoch."""
    from dassl.utils import load_checkpoint

    lines = [line for line in map(loss_line, stdout.splitlines()) if line]
    accuracies = [float(line.split(":")[1].strip().rstrip("%"))
                  for line in stdout.splitlines() if line.startswith("* accuracy:")]
    tensors = {}
    for epoch in range(1, EPOCHS + 1):
        path = osp.join(output_dir, "prompt_learner", f"model.pth.tar-{epoch}")
        # Upstream's checkpoints pickle scheduler objects: load_checkpoint reads them as
        # inert stand-ins (never a full unpickle).
        state_dict = load_checkpoint(path)["state_dict"]
        tensors[str(epoch)] = {key: state_dict[key].float() for key in learned}
    return {"loss_lines": lines, "accuracy": accuracies[-1] if accuracies else None,
            "tensors": tensors}


def run_upstream(baseline, checkouts, folder):
    """Train ``baseline`` with the upstream code; return (read_run's dict, argv, fingerprints)."""
    repo = checkouts[baseline.upstream_repo]
    code_dir = osp.join(repo, "KgCoOp") if baseline.upstream_repo == "kgcoop" else repo
    dassl = (osp.join(repo, "Dassl.ProGrad.pytorch") if baseline.upstream_repo == "kgcoop"
             else checkouts["dassl"])
    root, clip_path = write_inputs(folder)
    inputs = fingerprints(root, clip_path)
    output_dir = osp.join(folder, "output")
    args = train_args(root, baseline.upstream_config, output_dir, baseline.name)
    args += list(baseline.upstream_opts) + run_options(baseline, CLIP_SHAPE)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-c", _UPSTREAM_DRIVER, dassl, clip_path, CLIP_SHAPE,
                           *args], cwd=code_dir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"upstream {baseline.name} failed:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    args = [arg.replace(folder, "<tmp>") for arg in args]
    return read_run(proc.stdout, output_dir, baseline.learned), args, inputs


def commit_of(path):
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        raise SystemExit(f"{path} is not a git checkout: clone the upstream repository there "
                         "so that its commit is recorded") from None


def versions():
    import numpy
    import PIL
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "pillow": PIL.__version__, "machine": platform.machine(),
            "torch_threads": 1}


def as_json(tensors):
    return {epoch: {key: {"shape": list(value.shape), "values": value.flatten().tolist()}
                    for key, value in named.items()} for epoch, named in tensors.items()}


def to_json(record):
    """Indented JSON with each list of numbers on one line."""
    text = json.dumps(record, indent=1)
    return re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coop", required=True, help="git checkout of KaiyangZhou/CoOp")
    parser.add_argument("--dassl", required=True, help="git checkout of KaiyangZhou/Dassl.pytorch")
    parser.add_argument("--kgcoop", required=True, help="git checkout of htyao89/KgCoOp")
    parser.add_argument("--out", default=GOLDEN_DIR, help="folder of the golden JSON files")
    parser.add_argument("--only", nargs="*", choices=sorted(BASELINES), help="baselines to record")
    args = parser.parse_args(argv)
    checkouts = {"coop": osp.abspath(args.coop), "dassl": osp.abspath(args.dassl),
                 "kgcoop": osp.abspath(args.kgcoop)}
    upstream = {"KaiyangZhou/CoOp": commit_of(checkouts["coop"]),
                "KaiyangZhou/Dassl.pytorch": commit_of(checkouts["dassl"]),
                "htyao89/KgCoOp": commit_of(checkouts["kgcoop"])}
    command = "python -m tools.record_upstream_golden " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    os.makedirs(args.out, exist_ok=True)
    from dassl.utils import atomic_write

    for name in args.only or BASELINES:
        baseline = BASELINES[name]
        with tempfile.TemporaryDirectory() as folder:
            run, upstream_args, inputs = run_upstream(baseline, checkouts, folder)
        record = {
            "trainer": name,
            "recorded_with": {
                "command": command, "upstream_commits": upstream,
                "upstream_train_args": upstream_args, "shims": UPSTREAM_SHIMS,
                "versions": versions()},
            "inputs": inputs,
            "accuracy": run["accuracy"],
            "loss_lines": run["loss_lines"],
            "tensors": as_json(run["tensors"]),
        }
        path = osp.join(args.out, f"{name.lower()}.json")
        with atomic_write(path) as handle:
            handle.write(to_json(record))
        print(f"{name}: {len(run['loss_lines'])} loss lines, accuracy {run['accuracy']} -> {path}")


if __name__ == "__main__":
    main()
