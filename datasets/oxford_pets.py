import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .benchmark import Benchmark, read_lines, split_trainval


@DATASET_REGISTRY.register()
class OxfordPets(Benchmark):
    dataset_dir = "oxford_pets"
    image_folder = "images"
    section = "OxfordPets"

    def creation_files(self):
        return ["images", "annotations/trainval.txt", "annotations/test.txt"]

    def create_splits(self):
        trainval = self.read_data("trainval.txt")
        test = self.read_data("test.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, split_file):
        items = []
        for line in read_lines(osp.join(self.dataset_dir, "annotations", split_file)):
            imname, label, _species, _breed_id = line.strip().split(" ")
            breed = "_".join(imname.split("_")[:-1]).lower()  # Abyssinian_100 -> abyssinian
            items.append(Datum(impath=osp.join(self.image_dir, imname + ".jpg"),
                               label=int(label) - 1, classname=breed))
        return items
