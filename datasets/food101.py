from dassl.data.datasets import DATASET_REGISTRY

from .benchmark import Benchmark, read_and_split_data


@DATASET_REGISTRY.register()
class Food101(Benchmark):
    dataset_dir = "food-101"
    image_folder = "images"
    section = "Food101"

    def create_splits(self):
        return read_and_split_data(self.image_dir)
