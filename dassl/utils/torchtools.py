"""Checkpoint I/O and parameter counting (upstream ``dassl.utils.torchtools``).

Differences from upstream, none of which changes a signature:
- files are written to a temporary name and renamed, so a kill mid-save never
  leaves a truncated checkpoint;
- ``load_checkpoint`` reads with ``weights_only=True`` (torch >= 2.6's default)
  and falls back to a full unpickle only for checkpoints written by upstream
  Dassl, whose scheduler state pickles whole objects;
- the random-number state of a run can be stored and restored (exact resume).
"""
import os.path as osp
import pickle
import random
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
]


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


def load_checkpoint(fpath):
    """Load a checkpoint onto the CPU (or CUDA when available), naming the file on failure."""
    if fpath is None:
        raise ValueError("File path is None")
    fpath = osp.abspath(osp.expanduser(fpath))
    if not osp.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    map_location = None if torch.cuda.is_available() else "cpu"
    try:
        try:
            return torch.load(fpath, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            # Upstream Dassl pickles its warm-up scheduler (with the optimizer
            # inside) into "scheduler"; such files need a full unpickle, which is
            # what upstream itself does for every checkpoint.
            checkpoint = torch.load(fpath, map_location=map_location, weights_only=False)
            print(f'Note: "{fpath}" holds pickled Python objects (written by upstream Dassl?); '
                  "loaded with weights_only=False")
            return checkpoint
    except Exception as e:
        raise RuntimeError(
            f'Unable to load checkpoint from "{fpath}": the file is corrupt or not a '
            f"PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from e


def latest_checkpoint(fdir):
    """The path of the checkpoint named in ``fdir/checkpoint`` (the latest one
    ``save_checkpoint`` wrote), or None when there is no such pointer file."""
    pointer = osp.join(fdir, "checkpoint")
    if not osp.exists(pointer):
        return None
    with open(pointer) as f:
        return osp.join(fdir, f.readline().strip())


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    """Load the checkpoint named in ``fdir/checkpoint``; return its epoch count."""
    fpath = latest_checkpoint(fdir)
    if fpath is None:
        raise FileNotFoundError(f'No checkpoint pointer at "{osp.join(fdir, "checkpoint")}"')
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
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


