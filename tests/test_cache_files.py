"""datasets/cache_files.py: few-shot caches and ImageNet's preprocessed.pkl are read as data.
A cache that pickles anything but Datum lists is refused before any of it runs; caches
written by this project and by upstream Dassl/CoOp (any pickle protocol) load with no flag."""
import os
import os.path as osp
import pickle
import subprocess
import sys
import tarfile
import textwrap

import pytest

from datasets import prepare as prep
from datasets.cache_files import read_cache
from datasets.errors import DataFileError
from datasets.sources import Source
from tests import dataset_trees
from tests.helpers import run_cli
from tests.test_datasets import build, items


class _Payload:
    """Unpickling this touches ``marker``: the code a crafted cache would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def payload_cache(path, marker, valid_train):
    """A cache that runs code and still returns valid data (the silent case)."""
    with open(path, "wb") as f:  # "note" is a key the loader ignores; unpickling it runs the code
        pickle.dump({"train": valid_train, "val": valid_train[:1], "note": _Payload(marker)}, f)


def test_payload_in_a_fewshot_cache_is_refused_and_runs_nothing(tmp_path):
    dataset_trees.oxford_pets(str(tmp_path), per_class=6)
    ds = build("OxfordPets", tmp_path, shots=1)
    cache = osp.join(tmp_path, "oxford_pets", "split_fewshot", "shot_1-seed_1.pkl")
    marker = tmp_path / "ran"
    payload_cache(cache, marker, list(ds.train_x))
    with pytest.raises(DataFileError) as info:
        build("OxfordPets", tmp_path, shots=1)
    message = str(info.value)
    assert not marker.exists()
    assert cache in message and "posix.system" in message and "delete it" in message
    assert "\n" not in message


def test_payload_in_imagenet_preprocessed_is_refused(tmp_path):
    dataset_trees.imagenet(str(tmp_path))
    ds = build("ImageNet", tmp_path)
    path = osp.join(tmp_path, "imagenet", "preprocessed.pkl")
    marker = tmp_path / "ran"
    with open(path, "wb") as f:
        pickle.dump({"train": list(ds.train_x), "test": [_Payload(marker)]}, f)
    with pytest.raises(DataFileError, match="preprocessed.pkl: it pickles posix.system"):
        build("ImageNet", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("content, why", [
    (b"", "EOFError"), (b"\x80\x05garbage", "corrupt"),
    (pickle.dumps({"train": "not a list"}), "'train' is a str, not a list"),
    (pickle.dumps({"train": [1, 2]}), "not plain Datum"),
    (pickle.dumps(["train"]), "expected a dict")])
def test_corrupt_caches_name_the_file_and_the_fix(tmp_path, content, why):
    path = tmp_path / "shot_1-seed_1.pkl"
    path.write_bytes(content)
    with pytest.raises(DataFileError) as info:
        read_cache(str(path), ("train", "val"))
    assert why in str(info.value) and str(path) in str(info.value) and "delete it" in str(info.value)


UPSTREAM_DATUM = '''
class Datum:
    """upstream Dassl's Datum (dassl/data/datasets/base_dataset.py): the attributes it pickles"""

    def __init__(self, impath="", label=0, domain=0, classname=""):
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname
'''


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_caches_written_by_upstream_coop_load_without_a_flag(tmp_path, protocol):
    """The pickle is written in a separate interpreter that has upstream's Datum class and not
    this repository on its path, so its bytes are those upstream's fewshot caching writes."""
    dataset_trees.oxford_pets(str(tmp_path / "data"), per_class=6)
    ours = build("OxfordPets", tmp_path / "data", shots=2)
    os.remove(osp.join(tmp_path, "data", "oxford_pets", "split_fewshot", "shot_2-seed_1.pkl"))
    upstream = tmp_path / "upstream"
    for pkg in ("dassl", "dassl/data", "dassl/data/datasets"):
        os.makedirs(upstream / pkg, exist_ok=True)
        (upstream / pkg / "__init__.py").write_text("")
    (upstream / "dassl/data/datasets/base_dataset.py").write_text(UPSTREAM_DATUM)
    rows = {"train": items(ours.train_x)[::-1], "val": items(ours.val)}  # another order than ours
    script = textwrap.dedent(f"""
        import pickle, sys
        from dassl.data.datasets.base_dataset import Datum
        rows = {rows!r}
        data = {{k: [Datum(impath=p, label=y, classname=c) for p, y, c in v] for k, v in rows.items()}}
        with open(sys.argv[1], "wb") as f:
            pickle.dump(data, f, protocol={protocol})
    """)
    cache = osp.join(tmp_path, "data", "oxford_pets", "split_fewshot", "shot_2-seed_1.pkl")
    subprocess.run([sys.executable, "-c", script, cache], cwd=upstream, check=True,
                   env={**os.environ, "PYTHONPATH": str(upstream)})
    assert b"dassl.data.datasets.base_dataset" in open(cache, "rb").read()
    again = build("OxfordPets", tmp_path / "data", shots=2)
    assert items(again.train_x) == rows["train"] and items(again.val) == rows["val"]


def test_cache_written_by_this_project_loads_through_the_restricted_reader(tmp_path):
    dataset_trees.imagenet(str(tmp_path))
    first = build("ImageNet", tmp_path, shots=2)  # writes preprocessed.pkl and the few-shot cache
    for name in ("preprocessed.pkl", "split_fewshot/shot_2-seed_1.pkl"):
        assert osp.exists(osp.join(tmp_path, "imagenet", name))
    again = build("ImageNet", tmp_path, shots=2)
    assert items(again.train_x) == items(first.train_x) and items(again.test) == items(first.test)


def test_train_py_on_a_payload_cache_stops_in_one_line(tmp_path):
    root, marker = tmp_path / "data", tmp_path / "ran"
    dataset_trees.caltech101(str(root), per_class=9)
    ds = build("Caltech101", root, shots=2)
    cache = osp.join(root, "caltech-101", "split_fewshot", "shot_2-seed_1.pkl")
    payload_cache(cache, marker, list(ds.train_x))
    proc = run_cli(["--root", root, "--seed", 1, "--trainer", "ToyLinear",
                    "--dataset-config-file", "configs/datasets/caltech101.yaml",
                    "--config-file", "configs/toy/toy_linear.yaml", "--output-dir", tmp_path / "run",
                    "DATASET.NUM_SHOTS", "2"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    error = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(error) == 1 and cache in error[0] and "delete it" in error[0]
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == ["data"]  # no run folder that would read as interrupted


def test_prepare_never_installs_caches_from_an_archive(tmp_path, capsys):
    marker = tmp_path / "ran"
    src = tmp_path / "src" / "dtd"
    dataset_trees.folder_classes(str(src / "images"), ["banded"], 2)
    os.makedirs(src / "split_fewshot")
    with open(src / "split_fewshot" / "shot_1-seed_1.pkl", "wb") as f:
        pickle.dump({"train": [_Payload(marker)]}, f)
    with open(src / "preprocessed.pkl", "wb") as f:
        pickle.dump({"train": [_Payload(marker)]}, f)
    archive = tmp_path / "dtd-r1.0.1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="dtd")
    dataset_dir = tmp_path / "root" / "dtd"
    source = Source("dtd-r1.0.1.tar.gz", "images", take="dtd")
    prep.place(source, str(archive), str(dataset_dir), force=False, keep_original=False)
    assert sorted(os.listdir(dataset_dir)) == ["images"]
    out = capsys.readouterr().out
    assert "not installing split_fewshot" in out and "not installing preprocessed.pkl" in out
    assert not marker.exists()
