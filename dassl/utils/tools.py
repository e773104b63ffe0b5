"""Small file-system and bookkeeping helpers (upstream ``dassl.utils.tools``)."""
import difflib
import errno
import json
import os
import os.path as osp
import platform
import random
import sys
import tempfile
import warnings

import numpy as np
import PIL
import torch

__all__ = [
    "mkdir_if_missing",
    "check_isfile",
    "read_json",
    "write_json",
    "set_random_seed",
    "collect_env_info",
    "listdir_nohidden",
    "get_most_similar_str_to_a_from_b",
    "check_availability",
    "tolist_if_not",
    "atomic_write",
]


def mkdir_if_missing(dirname):
    if not osp.exists(dirname):
        try:
            os.makedirs(dirname)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise


def check_isfile(fpath):
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


class atomic_write:
    """Open ``fpath`` for writing through a temporary file in the same folder,
    renamed over ``fpath`` only when the block ends without an exception.

    A crash or a kill mid-write never leaves a half-written file that a later
    run would read.
    """

    def __init__(self, fpath, mode="w"):
        self.fpath = fpath
        self.mode = mode

    def __enter__(self):
        folder = osp.dirname(osp.abspath(self.fpath))
        mkdir_if_missing(folder)
        fd, self.tmp_path = tempfile.mkstemp(
            dir=folder, prefix="." + osp.basename(self.fpath) + ".", suffix=".tmp"
        )
        # mkstemp creates the file private (0600); give it the permissions a plain
        # open() would (0666 less the umask), so that shared run folders stay readable.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp_path, 0o666 & ~umask)
        self.file = os.fdopen(fd, self.mode)
        return self.file

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp_path, self.fpath)
        else:
            os.unlink(self.tmp_path)
        return False


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    # Same formatting as upstream (indent 4, ", " / ": " separators) so that
    # split files written here are byte-identical to upstream's.
    with atomic_write(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def set_random_seed(seed):
    """Seed Python's ``random``, NumPy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def collect_env_info():
    """A short report of the software a run used (printed into log.txt)."""
    import torchvision

    lines = [
        f"Python: {sys.version.split()[0]} ({platform.platform()})",
        f"PyTorch: {torch.__version__} (debug build: {torch.version.debug})",
        f"torchvision: {torchvision.__version__}",
        f"NumPy: {np.__version__}",
        f"Pillow: {PIL.__version__}",
        f"CUDA used to build PyTorch: {torch.version.cuda}",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"GPU {i}: {torch.cuda.get_device_name(i)}")
        lines.append(f"cuDNN: {torch.backends.cudnn.version()}")
    lines.append(f"CPU threads: {torch.get_num_threads()}")
    return "\n".join(lines)


def listdir_nohidden(path, sort=False):
    """Names in ``path`` that do not start with a dot (OS order unless ``sort``)."""
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def get_most_similar_str_to_a_from_b(a, b):
    """The string of ``b`` closest to ``a`` (difflib ratio)."""
    best, best_ratio = None, -1.0
    for candidate in b:
        ratio = difflib.SequenceMatcher(None, a, candidate).ratio()
        if ratio > best_ratio:
            best, best_ratio = candidate, ratio
    return best


def check_availability(requested, available):
    """Raise ValueError naming ``available``, closest first, if ``requested`` is not in it."""
    if requested in available:
        return
    ranked = sorted(
        available,
        key=lambda name: -difflib.SequenceMatcher(
            None, str(requested).lower(), name.lower()
        ).ratio(),
    )
    hint = f" (do you mean [{ranked[0]}]?)" if ranked else ""
    raise ValueError(
        f"[{requested}] is not available{hint}; expected one of "
        f"{ranked} (closest first)"
    )


def tolist_if_not(x):
    if not isinstance(x, list):
        x = [x]
    return x
