from dassl.data.datasets import DATASET_REGISTRY

from .benchmark import Benchmark, read_and_split_data

IGNORED = ["BACKGROUND_Google", "Faces_easy"]
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard",
              "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(Benchmark):
    dataset_dir = "caltech-101"
    image_folder = "101_ObjectCategories"
    section = "Caltech101"

    def create_splits(self):
        return read_and_split_data(self.image_dir, ignored=IGNORED, new_cnames=NEW_CNAMES)
