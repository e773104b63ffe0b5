"""What every benchmark loader shares: split files, split creation, few-shot
subsets with their cache, base/new class subsampling, and the layout check.

The behaviour is CoOp's, draw for draw (see DATASETS.md): published numbers are
computed on exactly these lists, and few-shot caches written here are
interchangeable with upstream's.
"""
import json
import math
import os.path as osp
import random
import re
from collections import defaultdict

from dassl.data.datasets import DatasetBase, Datum
from dassl.utils import listdir_nohidden, mkdir_if_missing, read_json, write_json
from datasets.errors import DataFileError

from .cache_files import read_cache, write_cache

SUBSAMPLE_CHOICES = ["all", "base", "new"]


def dataset_root(cfg):
    return osp.abspath(osp.expanduser(cfg.DATASET.ROOT))


def require_layout(dataset_name, dataset_dir, expected, section):
    """Raise if any of ``expected`` (paths relative to ``dataset_dir``) is absent,
    naming the dataset, the folder, the files and where to get them."""
    missing = [name for name in expected if not osp.exists(osp.join(dataset_dir, name))]
    if missing:
        raise FileNotFoundError(
            f"{dataset_name}: dataset not found. Expected the folder {dataset_dir} "
            f"(DATASET.ROOT/{osp.basename(dataset_dir)}) containing {expected}; missing: "
            f"{missing}. DATASETS.md, section '{section}', says where to get the files "
            "and how to lay them out."
        )


def read_split(filepath, path_prefix):
    """Train/val/test Datum lists of a ``split_zhou_*.json`` file; paths are
    joined to ``path_prefix`` and every listed image must exist."""
    try:
        split = read_json(filepath)
        parts = [split["train"], split["val"], split["test"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise DataFileError(
            f"Corrupt split file {filepath} ({type(e).__name__}: {e}); it must be a JSON object "
            "with 'train', 'val' and 'test' lists of [path, label, class name]. Delete it to "
            "rebuild it (the rebuilt split will differ from the published one), or download "
            "it again (DATASETS.md)."
        ) from None

    def _convert(items):
        out = []
        for entry in items:
            impath, label, classname = entry
            impath = osp.join(path_prefix, impath)
            if not osp.isfile(impath):
                raise FileNotFoundError(
                    f"Split file {filepath} lists {impath}, which does not exist: the images "
                    "are missing or DATASET.ROOT points at another copy")
            out.append(Datum(impath=impath, label=int(label), classname=classname))
        return out

    print(f"Reading split from {filepath}")
    return tuple(_convert(part) for part in parts)


def save_split(train, val, test, filepath, path_prefix):
    """Write a split file with paths relative to ``path_prefix`` (upstream format)."""

    def _extract(items):
        out = []
        for item in items:
            impath = item.impath.replace(path_prefix, "")
            impath = impath.removeprefix("/")
            out.append((impath, item.label, item.classname))
        return out

    write_json({"train": _extract(train), "val": _extract(val), "test": _extract(test)}, filepath)
    print(f"Saved split to {filepath}")


def split_trainval(trainval, p_val=0.2, rng=random):
    """Recipe T: per label (first-appearance order) shuffle the positions and
    send the first round(p_val * n) to val, the rest to train."""
    tracker = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item.label].append(idx)
    train, val = [], []
    for label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val == 0:
            name = trainval[idxs[0]].classname
            raise DataFileError(f"class {name} has {len(idxs)} training images, too few to draw a "
                                f"validation share of {p_val} from them; add images")
        rng.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def split_shuffled_group(impaths, label, classname, p_trn=0.5, p_val=0.2, rng=random):
    """Shuffle one class's images and cut them 50/20/30 (Python's round)."""
    rng.shuffle(impaths)
    n_total = len(impaths)
    n_train = round(n_total * p_trn)
    n_val = round(n_total * p_val)
    n_test = n_total - n_train - n_val
    if min(n_train, n_val, n_test) <= 0:
        raise DataFileError(f"class {classname} has {n_total} images, too few to split into train, "
                            f"val and test ({p_trn:g}/{p_val:g}/rest): add images")

    def _collate(ims):
        return [Datum(impath=im, label=label, classname=classname) for im in ims]

    return (_collate(impaths[:n_train]), _collate(impaths[n_train:n_train + n_val]),
            _collate(impaths[n_train + n_val:]))


def read_and_split_data(image_dir, p_trn=0.5, p_val=0.2, ignored=(), new_cnames=None, rng=random,
                        categories=None, list_images=None):
    """Recipe F: class folders sorted, images in OS order shuffled per class, 50/20/30."""
    if categories is None:
        categories = sorted(c for c in listdir_nohidden(image_dir) if c not in ignored)
    list_images = list_images or listdir_nohidden
    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = osp.join(image_dir, category)
        images = [osp.join(category_dir, im) for im in list_images(category_dir)]
        classname = (new_cnames or {}).get(category, category)
        try:
            tr, va, te = split_shuffled_group(images, label, classname, p_trn, p_val, rng)
        except DataFileError as e:
            raise DataFileError(f"{category_dir}: {e}, or remove the folder") from None
        train += tr
        val += va
        test += te
    return train, val, test


def subsample_classes(*args, subsample="all"):
    """Keep the first half of the labels ("base", ceil(n/2) of them) or the rest
    ("new"), relabelled from 0. Labels are read off the first list."""
    if subsample not in SUBSAMPLE_CHOICES:
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES must be one of {SUBSAMPLE_CHOICES}, "
                         f"got [{subsample}]")
    if subsample == "all":
        return args
    labels = sorted({item.label for item in args[0]})
    m = math.ceil(len(labels) / 2)
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabeler = {y: y_new for y_new, y in enumerate(selected)}
    output = []
    for dataset in args:
        output.append([Datum(impath=item.impath, label=relabeler[item.label],
                             classname=item.classname)
                       for item in dataset if item.label in relabeler])
    return output


class Benchmark(DatasetBase):
    """The CoOp pipeline: paths, full splits (read or created), few-shot
    subsets (cached per shots and seed), base/new subsampling.

    A loader sets ``dataset_dir`` (folder under DATASET.ROOT), ``image_folder``,
    ``section`` (its DATASETS.md heading) and implements ``create_splits``; a
    split file's paths are relative to ``split_prefix()``.
    """

    image_folder = ""
    section = ""
    sample_val = True  # ImageNet samples train only
    published_split = True  # CoOp publishes split_zhou_<Name>.json (datasets.prepare fetches it)

    def __init__(self, cfg):
        self.set_paths(dataset_root(cfg), cfg)
        self.check_layout()
        mkdir_if_missing(self.split_fewshot_dir)

        train, val, test = self.full_splits()
        train, val = self.fewshot(cfg, train, val)
        train, val, test = subsample_classes(train, val, test,
                                             subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        super().__init__(train_x=train, val=val, test=test)

    def set_paths(self, root, cfg):
        """Where the dataset lives; nothing is read (datasets.prepare --check uses this alone)."""
        self.dataset_dir = osp.join(root, type(self).dataset_dir)
        self.image_dir = osp.join(self.dataset_dir, self.image_folder)
        self.split_path = osp.join(self.dataset_dir, f"split_zhou_{type(self).__name__}.json")
        self.split_fewshot_dir = osp.join(self.dataset_dir, "split_fewshot")

    # -- hooks ----------------------------------------------------------------
    def split_form_files(self):
        """Folders (relative to the dataset folder) that a split file's paths point into."""
        return [self.image_folder]

    def creation_files(self):
        """Files (relative to the dataset folder) needed to create the split."""
        return [self.image_folder]

    def create_splits(self):
        raise NotImplementedError

    def split_prefix(self):
        return self.image_dir

    # -- pipeline -------------------------------------------------------------
    def check_layout(self):
        if osp.exists(self.split_path):
            require_layout(type(self).__name__, self.dataset_dir, self.split_form_files(), self.section)
        else:
            require_layout(type(self).__name__, self.dataset_dir, self.creation_files(),
                           self.section)

    def full_splits(self):
        if osp.exists(self.split_path):
            return read_split(self.split_path, self.split_prefix())
        train, val, test = self.create_splits()
        save_split(train, val, test, self.split_path, self.split_prefix())
        return train, val, test

    def fewshot(self, cfg, train, val):
        """Few-shot train (K) and val (min(K, 4)) subsets, cached per K and seed."""
        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots < 1:
            return train, val
        cache = osp.join(self.split_fewshot_dir, f"shot_{num_shots}-seed_{cfg.SEED}.pkl")
        if osp.exists(cache):
            print(f"Loading preprocessed few-shot data from {cache}")
            data = read_cache(cache, ("train", "val"))
            return data["train"], data.get("val", val)
        train = self.generate_fewshot_dataset(train, num_shots=num_shots)
        data = {"train": train}
        if self.sample_val:
            val = self.generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
            data["val"] = val
        print(f"Saving preprocessed few-shot data to {cache}")
        write_cache(data, cache)
        return train, val


def read_lines(path):
    with open(path) as f:
        return f.readlines()


def split_camel_case(name):
    """ApplyEyeMakeup -> Apply_Eye_Makeup (pieces start at capitals)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", name))

