from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    dataset_dir = "imagenet-adversarial"
    image_folder = "imagenet-a"
    section = "ImageNetA"
    # Labels are positions among its own 200 sorted wnid folders, not ImageNet's.
