import os.path as osp

from scipy.io import loadmat

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .benchmark import Benchmark, split_trainval


@DATASET_REGISTRY.register()
class StanfordCars(Benchmark):
    dataset_dir = "stanford_cars"
    image_folder = "cars_train"  # checked for; cars_test/ sits beside it
    section = "StanfordCars"

    def split_prefix(self):
        return self.dataset_dir  # split paths start with cars_train/ or cars_test/

    def split_form_files(self):
        return ["cars_train", "cars_test"]

    def creation_files(self):
        return ["cars_train", "cars_test", "devkit/cars_train_annos.mat",
                "cars_test_annos_withlabels.mat", "devkit/cars_meta.mat"]

    def create_splits(self):
        meta = osp.join(self.dataset_dir, "devkit", "cars_meta.mat")
        trainval = self.read_data("cars_train",
                                  osp.join(self.dataset_dir, "devkit", "cars_train_annos.mat"), meta)
        test = self.read_data("cars_test",
                              osp.join(self.dataset_dir, "cars_test_annos_withlabels.mat"), meta)
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, image_folder, anno_file, meta_file):
        annotations = loadmat(anno_file)["annotations"][0]
        class_names = loadmat(meta_file)["class_names"][0]
        items = []
        for record in annotations:
            label = int(record["class"][0, 0]) - 1
            words = class_names[label][0].split(" ")
            classname = " ".join([words[-1]] + words[:-1])  # the year goes first
            items.append(Datum(impath=osp.join(self.dataset_dir, image_folder, record["fname"][0]),
                               label=label, classname=classname))
        return items
