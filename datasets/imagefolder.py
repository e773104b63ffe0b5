"""ImageFolder: one's own images as a benchmark, without code.

``DATASET.ROOT/<DATASET.IMAGEFOLDER.DIR>/`` holds either ``train/``, ``val/``
(optional) and ``test/`` with one sub-folder per class, or just the class
sub-folders, which are then split per class like CoOp's Recipe F with the
ratios ``DATASET.IMAGEFOLDER.TRAIN_RATIO`` / ``VAL_RATIO`` (the rest is test).
Without ``val/`` the validation images are drawn from ``train/`` (Recipe T,
``VAL_RATIO``). Labels follow the sorted folder names; class names are the
folder names, or the ``<folder> <class name>`` lines of an optional
``classnames.txt``.

The split is drawn with its own generator (seed ``SPLIT_SEED``, not the run's)
and written once to ``split_zhou_ImageFolder.json`` in the benchmark format;
every later run reads it, so few-shot sampling, base/new and the protocol
scripts work as for the benchmarks.
"""
import os
import os.path as osp
import random

from dassl.data.datasets import DATASET_REGISTRY, Datum
from datasets.errors import ConfigError, DataFileError

from .benchmark import Benchmark, read_and_split_data, split_trainval
from .imagenet import read_classnames

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
NOT_CLASSES = ("split_fewshot",)


def class_folders(folder):
    return sorted(e.name for e in os.scandir(folder)
                  if e.is_dir() and not e.name.startswith(".") and e.name not in NOT_CLASSES)


def image_files(folder):
    return sorted(f for f in os.listdir(folder)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))


@DATASET_REGISTRY.register()
class ImageFolder(Benchmark):
    section = "Your own dataset (ImageFolder)"
    published_split = False

    def __init__(self, cfg):
        self.options = cfg.DATASET.IMAGEFOLDER
        super().__init__(cfg)

    def set_paths(self, root, cfg):
        folder = cfg.DATASET.IMAGEFOLDER.DIR
        if not folder:
            raise ConfigError("DATASET.IMAGEFOLDER.DIR is empty: set it to your image folder "
                              "(relative to DATASET.ROOT, or absolute); see the README, 'Your own dataset'")
        self.dataset_dir = osp.join(root, folder)
        self.image_dir = self.dataset_dir
        self.split_path = osp.join(self.dataset_dir, "split_zhou_ImageFolder.json")
        self.split_fewshot_dir = osp.join(self.dataset_dir, "split_fewshot")

    def check_layout(self):
        if osp.exists(self.split_path):
            return
        if not osp.isdir(self.dataset_dir) or not class_folders(self.dataset_dir):
            raise FileNotFoundError(
                f"ImageFolder: expected the folder {self.dataset_dir} holding train/ and test/ (and "
                "optionally val/) with one sub-folder per class, or the class sub-folders "
                "themselves; found " + ("no such folder" if not osp.isdir(self.dataset_dir)
                                        else "no sub-folder"))

    def names_of(self, folders):
        names = {f: f for f in folders}
        path = osp.join(self.dataset_dir, "classnames.txt")
        if osp.exists(path):
            names.update(read_classnames(path))
        return names

    def read_folder(self, folder, classes, names):
        items = []
        for label, cls in enumerate(classes):
            class_dir = osp.join(folder, cls)
            if osp.isdir(class_dir):
                files = image_files(class_dir)
                if not files:
                    raise DataFileError(f"{class_dir}: a class folder with no images (files ending in "
                                        f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
                items += [Datum(impath=osp.join(class_dir, f), label=label, classname=names[cls])
                          for f in files]
        return items

    def create_splits(self):
        rng = random.Random(self.options.SPLIT_SEED)
        top = class_folders(self.dataset_dir)
        if "train" in top and "test" in top:
            splits = {s: osp.join(self.dataset_dir, s) for s in top if s in ("train", "val", "test")}
            classes = sorted(set().union(*(class_folders(f) for f in splits.values())))
            names = self.names_of(classes)
            train = self.read_folder(splits["train"], classes, names)
            test = self.read_folder(splits["test"], classes, names)
            if "val" in splits:
                val = self.read_folder(splits["val"], classes, names)
            else:
                try:
                    train, val = split_trainval(train, self.options.VAL_RATIO, rng)
                except DataFileError as e:
                    raise DataFileError(f"{splits['train']}: {e}, or add a val/ folder") from None
            return train, val, test
        return read_and_split_data(self.dataset_dir, self.options.TRAIN_RATIO, self.options.VAL_RATIO,
                                   new_cnames=self.names_of(top), rng=rng, categories=top,
                                   list_images=image_files)
