from dassl.data.datasets import DATASET_REGISTRY

from .benchmark import Benchmark, read_and_split_data

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(Benchmark):
    dataset_dir = "eurosat"
    image_folder = "2750"
    section = "EuroSAT"

    def create_splits(self):
        return read_and_split_data(self.image_dir, new_cnames=NEW_CNAMES)
