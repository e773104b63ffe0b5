from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    dataset_dir = "imagenet-rendition"
    image_folder = "imagenet-r"
    section = "ImageNetR"
    # Labels are positions among its own 200 sorted wnid folders, not ImageNet's.
