import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .benchmark import Benchmark, read_lines


@DATASET_REGISTRY.register()
class FGVCAircraft(Benchmark):
    """Reads the official train/val/test lists every time; no split file."""

    dataset_dir = "fgvc_aircraft"
    image_folder = "images"
    section = "FGVCAircraft"
    published_split = False
    LISTS = ["variants.txt", "images_variant_train.txt", "images_variant_val.txt",
             "images_variant_test.txt"]

    def creation_files(self):
        return ["images"] + self.LISTS

    def full_splits(self):
        classnames = [line.strip() for line in read_lines(osp.join(self.dataset_dir, "variants.txt"))]
        cname2lab = {c: i for i, c in enumerate(classnames)}
        return tuple(self.read_data(cname2lab, name) for name in self.LISTS[1:])

    def read_data(self, cname2lab, split_file):
        items = []
        for line in read_lines(osp.join(self.dataset_dir, split_file)):
            image_id, classname = line.strip().split(" ", 1)
            items.append(Datum(impath=osp.join(self.image_dir, image_id + ".jpg"),
                               label=cname2lab[classname], classname=classname))
        return items
