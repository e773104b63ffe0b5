import os
import os.path as osp
from collections import OrderedDict

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum
from dassl.utils import listdir_nohidden, mkdir_if_missing

from .benchmark import (
    Benchmark,
    dataset_root,
    read_lines,
    require_layout,
    subsample_classes,
)
from .cache_files import read_cache, write_cache


def read_classnames(text_file):
    """wnid -> name, in file order, from ``<wnid> <name words>`` lines."""
    classnames = OrderedDict()
    for line in read_lines(text_file):
        parts = line.strip().split(" ")
        classnames[parts[0]] = " ".join(parts[1:])
    return classnames


def read_wnid_folders(image_dir, classnames, folders):
    """Items of ``folders`` (wnid folders of ``image_dir``) labelled by position."""
    items = []
    for label, folder in enumerate(folders):
        if folder not in classnames:
            raise KeyError(f"{osp.join(image_dir, folder)} has no entry in classnames.txt")
        for imname in listdir_nohidden(osp.join(image_dir, folder)):
            items.append(Datum(impath=osp.join(image_dir, folder, imname), label=label,
                               classname=classnames[folder]))
    return items


@DATASET_REGISTRY.register()
class ImageNet(Benchmark):
    """images/train is train; images/val is test and val. The scanned lists are
    frozen in preprocessed.pkl (never invalidated, as upstream)."""

    dataset_dir = "imagenet"
    image_folder = "images"
    section = "ImageNet"
    sample_val = False
    published_split = False

    def __init__(self, cfg):
        self.set_paths(dataset_root(cfg), cfg)
        self.preprocessed = osp.join(self.dataset_dir, "preprocessed.pkl")
        if not osp.exists(self.preprocessed):
            require_layout("ImageNet", self.dataset_dir, self.creation_files(), self.section)
        mkdir_if_missing(self.split_fewshot_dir)

        if osp.exists(self.preprocessed):
            data = read_cache(self.preprocessed, ("train", "test"))
            train, test = data["train"], data["test"]
        else:
            classnames = read_classnames(osp.join(self.dataset_dir, "classnames.txt"))
            train = self.read_data(classnames, "train")
            test = self.read_data(classnames, "val")
            write_cache({"train": train, "test": test}, self.preprocessed)

        train, _ = self.fewshot(cfg, train, None)
        train, test = subsample_classes(train, test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        DatasetBase.__init__(self, train_x=train, val=test, test=test)

    def creation_files(self):
        return ["classnames.txt", "images/train", "images/val"]

    def read_data(self, classnames, split_dir):
        split_dir = osp.join(self.image_dir, split_dir)
        # Every sub-directory is a class, hidden ones included (upstream behaviour).
        folders = sorted(f.name for f in os.scandir(split_dir) if f.is_dir())
        return read_wnid_folders(split_dir, classnames, folders)


class ImageNetVariant(DatasetBase):
    """Test-only ImageNet variants: no split, no few-shot, no base/new; train_x
    and test are the same list."""

    image_folder = ""
    section = ""
    ignored = ("README.txt",)
    published_split = False

    def __init__(self, cfg):
        self.set_paths(dataset_root(cfg), cfg)
        require_layout(type(self).__name__, self.dataset_dir, self.creation_files(), self.section)
        classnames = read_classnames(osp.join(self.dataset_dir, "classnames.txt"))
        data = self.read_data(classnames)
        super().__init__(train_x=data, test=data)

    def set_paths(self, root, cfg):
        self.dataset_dir = osp.join(root, type(self).dataset_dir)
        self.image_dir = osp.join(self.dataset_dir, self.image_folder)

    def creation_files(self):
        return ["classnames.txt", self.image_folder]

    def read_data(self, classnames):
        folders = [f for f in listdir_nohidden(self.image_dir, sort=True) if f not in self.ignored]
        return read_wnid_folders(self.image_dir, classnames, folders)
