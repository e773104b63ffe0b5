import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, Datum
from dassl.utils import listdir_nohidden

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    """Folders 0..999; folder L takes the L-th name of classnames.txt (file order)."""

    dataset_dir = "imagenetv2"
    image_folder = "imagenetv2-matched-frequency-format-val"
    section = "ImageNetV2"

    def read_data(self, classnames):
        wnids = list(classnames.keys())
        items = []
        for label in range(1000):
            folder = osp.join(self.image_dir, str(label))
            if not osp.isdir(folder):
                raise FileNotFoundError(f"ImageNetV2: folder {folder} is missing (0 ... 999 expected)")
            for imname in listdir_nohidden(folder):
                items.append(Datum(impath=osp.join(folder, imname), label=label,
                                   classname=classnames[wnids[label]]))
        return items
