"""Benchmark loaders, each registered in Dassl's DATASET_REGISTRY on import.

They reproduce CoOp's loaders item for item; DATASETS.md says where each
dataset comes from and how it is laid out under DATASET.ROOT.
"""
from . import (  # noqa: F401
               caltech101,
               dtd,
               eurosat,
               fgvc_aircraft,
               food101,
               imagefolder,
               imagenet,
               imagenet_a,
               imagenet_r,
               imagenet_sketch,
               imagenetv2,
               oxford_flowers,
               oxford_pets,
               stanford_cars,
               sun397,
               synthworld,
               ucf101,
)
