from dassl.data.datasets import DATASET_REGISTRY

from .benchmark import Benchmark, read_and_split_data


@DATASET_REGISTRY.register()
class DescribableTextures(Benchmark):
    dataset_dir = "dtd"
    image_folder = "images"
    section = "DescribableTextures (DTD)"

    def create_splits(self):
        return read_and_split_data(self.image_dir)
