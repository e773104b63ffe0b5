from .base_dataset import DatasetBase, Datum  # noqa: F401
from .build import DATASET_REGISTRY, build_dataset  # noqa: F401
