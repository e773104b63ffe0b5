import os.path as osp
from collections import defaultdict

from scipy.io import loadmat

from dassl.data.datasets import DATASET_REGISTRY
from dassl.utils import read_json

from .benchmark import Benchmark, split_shuffled_group


@DATASET_REGISTRY.register()
class OxfordFlowers(Benchmark):
    dataset_dir = "oxford_flowers"
    image_folder = "jpg"
    section = "OxfordFlowers (Flowers102)"

    def creation_files(self):
        return ["jpg", "imagelabels.mat", "cat_to_name.json"]

    def create_splits(self):
        """Recipe L: classes in order of first appearance in imagelabels.mat, 50/20/30."""
        tracker = defaultdict(list)
        labels = loadmat(osp.join(self.dataset_dir, "imagelabels.mat"))["labels"][0]
        for i, label in enumerate(labels):
            tracker[int(label)].append(osp.join(self.image_dir, f"image_{i + 1:05d}.jpg"))
        lab2cname = read_json(osp.join(self.dataset_dir, "cat_to_name.json"))
        train, val, test = [], [], []
        for label, impaths in tracker.items():
            tr, va, te = split_shuffled_group(impaths, label - 1, lab2cname[str(label)])
            train += tr
            val += va
            test += te
        return train, val, test
