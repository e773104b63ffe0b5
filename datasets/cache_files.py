"""Dataset caches read as data, never as code.

The few-shot caches (``split_fewshot/shot_K-seed_S.pkl``) and ImageNet's
``preprocessed.pkl`` are pickles, in the format upstream CoOp writes, so that
caches move between the two codebases. A pickle can name any function and have
the reader call it; these files hold only dicts and lists of ``Datum``. They are
read by an unpickler that resolves exactly the names those files need and
refuses every other one before it is called, then the contents are checked to
be what the loaders expect. Pickles written by this project and by upstream
Dassl/CoOp (any protocol) load unchanged, with no flag.
"""
import copyreg
import os
import os.path as osp
import pickle
import tempfile

from dassl.data.datasets import Datum
from datasets.errors import DataFileError

# What a cache pickles, by the names pickle records: Datum, and with protocols 0 and 1
# the generic reconstructor that creates a plain object of that class (protocols below 3
# record Python 2's module names).
_ALLOWED = {
    ("dassl.data.datasets.base_dataset", "Datum"): Datum,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
}
_DATUM_FIELDS = {"_impath": str, "_label": int, "_domain": int, "_classname": str}


REBUILD = "delete it and run again to rebuild it"


class _CacheUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


class _Refused(pickle.UnpicklingError):
    pass


def write_cache(obj, fpath):
    """Pickle to a temporary file renamed over ``fpath``: a crash mid-write never
    leaves a truncated cache that later runs would trust."""
    folder = osp.dirname(fpath)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + osp.basename(fpath) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp_path, fpath)
    finally:
        if osp.exists(tmp_path):
            os.unlink(tmp_path)


def _problem(data, keys):
    """Why ``data`` is not a dict of ``keys`` (a subset) to lists of Datum ("" if it is)."""
    if not isinstance(data, dict) or not data or not set(data) <= set(keys):
        return f"expected a dict with keys among {sorted(keys)}"
    for key, items in data.items():
        if not isinstance(items, list):
            return f"'{key}' is a {type(items).__name__}, not a list"
        for item in items:
            fields = getattr(item, "__dict__", None) if type(item) is Datum else None
            if fields is None or set(fields) != set(_DATUM_FIELDS) or any(
                    not isinstance(fields[k], t) for k, t in _DATUM_FIELDS.items()):
                return f"'{key}' holds {type(item).__name__} items that are not plain Datum"
    return ""


def read_cache(fpath, keys):
    """The dict of Datum lists in the cache ``fpath`` (its keys among ``keys``). Raises
    DataFileError, naming the file, for a corrupt cache or one that pickles anything else."""
    try:
        with open(fpath, "rb") as f:
            data = _CacheUnpickler(f).load()
    except _Refused as e:
        raise DataFileError(
            f"refused to read the dataset cache {fpath}: it pickles {e}, which a cache never "
            f"holds, and unpickling it could run code from the file; {REBUILD}") from None
    except Exception as e:  # truncated, not a pickle, ...
        raise DataFileError(f"corrupt dataset cache {fpath} ({type(e).__name__}: {e}); "
                            f"{REBUILD}") from None
    why = _problem(data, keys)
    if why:
        raise DataFileError(f"corrupt dataset cache {fpath}: {why}; {REBUILD}")
    return data
