"""Checkpoint I/O and parameter counting (upstream ``dassl.utils.torchtools``).

Differences from upstream, none of which changes a signature:
- files are written to a temporary name and renamed, so a kill mid-save never
  leaves a truncated checkpoint;
- ``load_checkpoint`` never runs code from the file unless the user opts in
  (docs/SECURITY.md). It reads with ``weights_only=True``; the objects upstream
  Dassl pickles into its scheduler state (the wrapped torch scheduler with its
  optimizer) are read as inert ``PickledObject`` stand-ins. Anything else is
  refused, naming the file and the class, unless ``DASSL_TRUST_CHECKPOINT=1``
  (``train.py --trust-checkpoint``) allows a full unpickle;
- the random-number state of a run can be stored and restored (exact resume).
"""
import json
import os
import os.path as osp
import pickle
import random
import re
from collections import OrderedDict

import numpy as np
import torch

from .tools import atomic_write, mkdir_if_missing

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "resume_from_checkpoint",
    "load_pretrained_weights",
    "count_num_param",
    "get_rng_state",
    "set_rng_state",
    "torch_save_atomic",
    "latest_checkpoint",
    "TRUST_CHECKPOINT_ENV",
    "checkpoints_trusted",
    "trust_checkpoints",
    "CheckpointFileError",
    "UntrustedCheckpointError",
    "TrustSettingError",
    "PickledObject",
    "state_dict_of",
    "RUN_MANIFEST",
    "write_run_manifest",
    "run_checkpoint",
]


class CheckpointFileError(RuntimeError):
    """A checkpoint file that cannot be used: corrupt, not a checkpoint, or written by
    another number of processes (upstream lets torch's RuntimeError through)."""


class UntrustedCheckpointError(CheckpointFileError):
    """A checkpoint that could run code when loaded, refused without the user's opt-in
    (``--trust-checkpoint`` / ``DASSL_TRUST_CHECKPOINT=1``, docs/SECURITY.md)."""


class TrustSettingError(CheckpointFileError):
    """``DASSL_TRUST_CHECKPOINT`` holds neither yes nor no: no checkpoint is loaded (nor
    Python config run) until it says which."""


# Set to 1 to let load_checkpoint fully unpickle files (train.py --trust-checkpoint sets it).
TRUST_CHECKPOINT_ENV = "DASSL_TRUST_CHECKPOINT"


def torch_save_atomic(obj, fpath):
    """``torch.save`` through a temporary file renamed over ``fpath``."""
    with atomic_write(fpath, "wb") as f:
        torch.save(obj, f)


def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    """Save ``state`` to ``save_dir/model.pth.tar-<epoch>`` (or ``model_name``)
    and record its name in ``save_dir/checkpoint``."""
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        # DataParallel prefixes keys with "module."
        state["state_dict"] = OrderedDict(
            (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items()
        )
    epoch = state["epoch"]
    if not model_name:
        model_name = "model.pth.tar-" + str(epoch)
    fpath = osp.join(save_dir, model_name)
    torch_save_atomic(state, fpath)
    print(f"Checkpoint saved to {fpath}")
    with atomic_write(osp.join(save_dir, "checkpoint"), "w") as f:
        f.write(f"{osp.basename(fpath)}\n")
    if is_best:
        best_fpath = osp.join(osp.dirname(fpath), "model-best.pth.tar")
        torch_save_atomic(state, best_fpath)
        print(f'Best checkpoint saved to "{best_fpath}"')


_YES, _NO = ("1", "true", "yes"), ("", "0", "false", "no")


def checkpoints_trusted():
    """Whether the user allowed full unpickling of checkpoints (``DASSL_TRUST_CHECKPOINT=1``).
    Yes: 1, true, yes; no: 0, false, no, empty or unset (any case); anything else is refused,
    so that a value meant as "no" never opens the door."""
    raw = os.environ.get(TRUST_CHECKPOINT_ENV, "")
    value = raw.strip().lower()
    if value in _YES or value in _NO:
        return value in _YES
    raise TrustSettingError(f"{TRUST_CHECKPOINT_ENV}={raw!r} is neither yes (1, true, yes) nor no (0, false, "
                      "no, or unset); set one of those (docs/SECURITY.md)")


def trust_checkpoints():
    """Allow full unpickling for this process and the processes it starts (``--trust-checkpoint``).
    An environment variable rather than a config key: a config file can come from a stranger too."""
    os.environ[TRUST_CHECKPOINT_ENV] = "1"


class PickledObject:
    """Inert stand-in for an object that upstream Dassl pickles into a checkpoint's
    scheduler state: its torch scheduler (the warm-up scheduler's successor) with the
    optimizer inside. It keeps the pickled attributes and runs no code of its own."""

    def __setstate__(self, state):
        self.pickled_state = state

    def state_dict(self):
        """What ``LRScheduler.state_dict`` gives for the scheduler this object stands for."""
        return {k: v for k, v in self.pickled_state.items() if k != "optimizer"}


def _default_dict_stand_in(default_factory=None):
    return {}  # the optimizer's ``state`` (a defaultdict); its entries follow as plain items


# Exactly what upstream Dassl's schedulers and optimizers put into a pickle, by the
# names pickle records (module of definition + class name).
_UPSTREAM_PICKLED_CLASSES = [
    "torch.optim.lr_scheduler.StepLR",
    "torch.optim.lr_scheduler.MultiStepLR",
    "torch.optim.lr_scheduler.CosineAnnealingLR",
    "dassl.optim.lr_scheduler.ConstantWarmupScheduler",
    "dassl.optim.lr_scheduler.LinearWarmupScheduler",
    "torch.optim.sgd.SGD",
    "torch.optim.adam.Adam",
    "torch.optim.adamw.AdamW",
    "torch.optim.rmsprop.RMSprop",
    "torch.optim.radam.RAdam",
    "dassl.optim.radam.RAdam",
    "dassl.optim.radam.PlainRAdam",
    "dassl.optim.radam.AdamW",
]
_UPSTREAM_STAND_INS = [(PickledObject, name) for name in _UPSTREAM_PICKLED_CLASSES] + [
    (_default_dict_stand_in, "collections.defaultdict"),
    (dict, "builtins.dict"),  # the defaultdict's factory, never called by the stand-in
]


_TORCH_VERSION = tuple(int(part) for part in torch.__version__.split(".")[:2])


def _load_without_code(fpath, map_location):
    """``torch.load(weights_only=True)`` with upstream Dassl's pickled objects as stand-ins."""
    if _TORCH_VERSION < (2, 6):  # no stand-ins (safe_globals with names): tensors and containers only
        return torch.load(fpath, map_location=map_location, weights_only=True)
    with torch.serialization.safe_globals(_UPSTREAM_STAND_INS):
        return torch.load(fpath, map_location=map_location, weights_only=True)


def _refused_globals(fpath, error):
    """The classes or functions a file would have had to import, for the error message."""
    if _TORCH_VERSION >= (2, 6):
        try:
            with torch.serialization.safe_globals(_UPSTREAM_STAND_INS):
                names = torch.serialization.get_unsafe_globals_in_checkpoint(fpath)
            if names:
                return names
        except Exception:
            pass
    return re.findall(r"GLOBAL (\S+)", str(error))[:1] or ["an object weights_only loading refuses"]


def load_checkpoint(fpath):
    """Load a checkpoint onto the CPU (or CUDA when available), naming the file on failure.

    Nothing in the file is executed: see the module docstring and docs/SECURITY.md.
    """
    if fpath is None:
        raise ValueError("File path is None")
    fpath = osp.abspath(osp.expanduser(fpath))
    if not osp.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    trusted = checkpoints_trusted()  # read at every load: a value that is neither yes nor no stops here
    map_location = None if torch.cuda.is_available() else "cpu"
    try:
        try:
            return _load_without_code(fpath, map_location)
        except pickle.UnpicklingError as e:
            if not trusted:
                raise UntrustedCheckpointError(
                    f'refused to load "{fpath}": it pickles {", ".join(_refused_globals(fpath, e))}, '
                    "which is neither tensors nor what upstream Dassl checkpoints hold, and "
                    "unpickling it could run code from the file. If you trust where the file "
                    "comes from, pass --trust-checkpoint to train.py or set "
                    f"{TRUST_CHECKPOINT_ENV}=1 (docs/SECURITY.md)") from None
            # The one full unpickle of the project, on the user's explicit opt-in.
            checkpoint = torch.load(fpath, map_location=map_location, weights_only=False)
            print(f'Note: "{fpath}" was fully unpickled ({TRUST_CHECKPOINT_ENV} is set)')
            return checkpoint
        except RuntimeError as e:
            if "TorchScript" not in str(e):
                raise
            raise UntrustedCheckpointError(
                f'refused to load "{fpath}": it is a TorchScript archive, which is a program, '
                "not a checkpoint; checkpoints are torch.save files of tensors") from None
    except CheckpointFileError:
        raise
    except Exception as e:
        detail = (str(e).splitlines() or ["the file ends early"])[0][:200]
        empty = "it is empty; " if osp.getsize(fpath) == 0 else ""
        raise CheckpointFileError(
            f'Unable to load checkpoint from "{fpath}": {empty}the file is corrupt or not a '
            f"PyTorch checkpoint ({type(e).__name__}: {detail}); copy it again from where it "
            "came from, or delete it (and train again)") from None


def latest_checkpoint(fdir):
    """The path of the checkpoint named in ``fdir/checkpoint`` (the latest one
    ``save_checkpoint`` wrote), or None when there is no such pointer file."""
    pointer = osp.join(fdir, "checkpoint")
    if not osp.exists(pointer):
        return None
    with open(pointer) as f:
        return osp.join(fdir, f.readline().strip())


def state_dict_of(checkpoint, fpath):
    """The model weights of a checkpoint that ``save_checkpoint`` wrote; a CheckpointFileError
    naming the file for anything else."""
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        held = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointFileError(
            f'"{fpath}" is not a training checkpoint: it has no "state_dict" (it holds {held}); '
            "use a model.pth.tar-N or model-best.pth.tar file that train.py saved (plain weights go "
            "to MODEL.INIT_WEIGHTS)")
    return checkpoint["state_dict"]


# A run of several models (E2MIM's prompt learner and critic) moves as one: every model's
# file is written, then this manifest names the file all of them hold.
RUN_MANIFEST = "checkpoints.json"
_EPOCH_FILE = re.compile(r"^model\.pth\.tar-(\d+)$")


def write_run_manifest(directory, names, model_name):
    """Record, after every model in ``names`` has saved ``model_name``, that the run's state is
    that file in each ``directory/<name>/``."""
    with atomic_write(osp.join(directory, RUN_MANIFEST), "w") as f:
        json.dump({"file": model_name, "models": list(names)}, f)


def run_checkpoint(directory, names):
    """(file name, disagreement) of the checkpoint that the run in ``directory`` of the models
    ``names`` resumes from: the file every model holds. Normally each model's pointer names it
    and the disagreement is "". When the pointers disagree (a run stopped between saving two
    models), the manifest's file if every model holds it, or else the latest epoch file every
    model holds, and the disagreement says what each pointer named. (None, "") when a model
    has no pointer; CheckpointFileError when the models share no checkpoint."""
    pointers = {name: latest_checkpoint(osp.join(directory, name)) for name in names}
    if not names or any(p is None for p in pointers.values()):
        return None, ""

    def held(file):
        return all(osp.isfile(osp.join(directory, name, file)) for name in names)

    files = {osp.basename(p) for p in pointers.values()}
    if len(files) == 1:  # each file is written before its pointer
        return files.pop(), ""
    disagreement = ", ".join(f"{name} -> {osp.basename(p)}" for name, p in pointers.items())
    try:
        with open(osp.join(directory, RUN_MANIFEST)) as f:
            manifest = json.load(f).get("file")
    except (OSError, ValueError, AttributeError):
        manifest = None
    if manifest and held(manifest):
        return manifest, disagreement
    epochs = sorted(int(m.group(1)) for m in map(_EPOCH_FILE.match, os.listdir(osp.join(directory, names[0])))
                    if m and held(m.group(0)))
    if not epochs:
        raise CheckpointFileError(
            f"the models of {directory} share no checkpoint ({disagreement}): the run cannot resume "
            "as one; delete the folder to train again, or choose another --output-dir")
    return f"model.pth.tar-{epochs[-1]}", disagreement


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    """Load the checkpoint named in ``fdir/checkpoint``; return its epoch count."""
    fpath = latest_checkpoint(fdir)
    if fpath is None:
        raise FileNotFoundError(f'No checkpoint pointer at "{osp.join(fdir, "checkpoint")}"')
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(state_dict_of(checkpoint, fpath))
    print("Loaded model weights")
    for part, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None or checkpoint.get(part) is None:
            continue
        try:
            target.load_state_dict(checkpoint[part])
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            raise CheckpointFileError(
                f'"{fpath}": its {part} state does not fit this run ({type(e).__name__}: {e}); it was '
                f"saved with another OPTIM setting or is damaged: resume with the config that wrote "
                "it, or train in a new --output-dir") from None
        print(f"Loaded {part}")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def load_pretrained_weights(model, weight_path):
    """Copy the tensors of ``weight_path`` whose names and shapes match ``model``."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint
    model_dict = model.state_dict()
    new_state_dict = OrderedDict()
    matched_layers, discarded_layers = [], []
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[7:]
        if k in model_dict and model_dict[k].size() == v.size():
            new_state_dict[k] = v
            matched_layers.append(k)
        else:
            discarded_layers.append(k)
    model_dict.update(new_state_dict)
    model.load_state_dict(model_dict)
    if not matched_layers:
        raise ValueError(
            f'No layer of "{weight_path}" matches the model (names or shapes differ)'
        )
    print(f'Successfully loaded pretrained weights from "{weight_path}"')
    if discarded_layers:
        print(f"Layers discarded due to unmatched keys or size: {discarded_layers}")


def count_num_param(model=None, params=None):
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        s = 0
        for p in params:
            if isinstance(p, dict):
                s += p["params"].numel()
            else:
                s += p.numel()
        return s
    raise ValueError("model and params must be provided")


def get_rng_state():
    """Every global random state a run draws from, in a form ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


