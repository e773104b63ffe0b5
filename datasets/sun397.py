import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .benchmark import Benchmark, read_lines, split_trainval


@DATASET_REGISTRY.register()
class SUN397(Benchmark):
    dataset_dir = "sun397"
    image_folder = "SUN397"
    section = "SUN397"

    def creation_files(self):
        return ["SUN397", "ClassName.txt", "Training_01.txt", "Testing_01.txt"]

    def create_splits(self):
        classnames = [line.strip()[1:] for line in read_lines(osp.join(self.dataset_dir, "ClassName.txt"))]
        cname2lab = {c: i for i, c in enumerate(classnames)}
        trainval = self.read_data(cname2lab, "Training_01.txt")
        test = self.read_data(cname2lab, "Testing_01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, cname2lab, text_file):
        items = []
        for line in read_lines(osp.join(self.dataset_dir, text_file)):
            imname = line.strip()[1:]  # drop the leading "/"
            class_key = osp.dirname(imname)
            # a/apartment_building/outdoor -> "outdoor apartment_building"
            classname = " ".join(class_key.split("/")[1:][::-1])
            items.append(Datum(impath=osp.join(self.image_dir, imname), label=cname2lab[class_key],
                               classname=classname))
        return items
