"""Where each benchmark's files come from, and where they go: the one table of these facts.

URLs and Google Drive file ids are those of CoOp's DATASETS.md (KaiyangZhou/CoOp);
the archive URLs of Food101, ImageNet-A and ImageNet-R are the direct links of
the pages CoOp points to.

Checksums: an MD5 is recorded where a maintained library publishes it for the same
file, and its source is named beside it (torchvision's dataset classes, as installed
with requirements.txt unless an older release is named; tests/test_sources.py checks
those against the installed torchvision). No size or SHA256 is known to this project
("unknown" in ``datasets.prepare --sources``): nothing is guessed. The files in
``UNVERIFIABLE`` have no published checksum; they are checked only by reading them
(an archive through to its end, a split file as JSON with train/val/test lists,
datasets/download.py), which catches a cut or substituted download but not a
deliberately altered file.

Every file can be fetched from a mirror instead (``--mirror URL`` or the
``DATASETS_MIRROR`` environment variable): then ``<mirror>/<filename>`` is
downloaded by plain HTTP, Drive files included.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    filename: str  # name of the downloaded file (and on a mirror)
    provides: str  # path in the dataset folder that exists once this file is in place
    url: str = ""  # HTTP(S) download
    drive_id: str = ""  # Google Drive file id (fetched with gdown)
    sha256: str | None = None  # None: unknown
    size: int | None = None  # bytes; None: unknown
    md5: str | None = None
    take: str | None = ""  # archive: folder inside it whose entries go into the dataset folder;
    #                         None: not an archive, the file itself goes to ``provides``
    into: str = ""  # archive: folder of the dataset folder that receives those entries
    manual: str = ""  # where a user gets a file that cannot be fetched automatically
    optional: bool = False  # only needed to build a split, which the published split file replaces

    @property
    def is_archive(self):
        return self.take is not None


def split_file(name, drive_id):
    return Source(f"split_zhou_{name}.json", f"split_zhou_{name}.json", drive_id=drive_id, take=None)


VGG = "https://www.robots.ox.ac.uk/~vgg/data"
CARS = "http://ai.stanford.edu/~jkrause/car196"
CLASSNAMES = Source("classnames.txt", "classnames.txt", drive_id="1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF",
                    take=None)
IMAGENET_SITE = "https://image-net.org/download-images.php (an account and the licence terms)"

SOURCES = {
    "Caltech101": [
        Source("101_ObjectCategories.tar.gz", "101_ObjectCategories",
               "http://www.vision.caltech.edu/Image_Datasets/Caltech101/101_ObjectCategories.tar.gz",
               md5="b224c7392d521a49829488ab0f1120d9"),  # earlier torchvision releases, datasets/caltech.py
        split_file("Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    ],
    "OxfordPets": [
        Source("images.tar.gz", "images", f"{VGG}/pets/data/images.tar.gz",
               md5="5c4f3ee8e5d25df40f4fd59a7f44e54c"),  # torchvision datasets/oxford_iiit_pet.py
        Source("annotations.tar.gz", "annotations", f"{VGG}/pets/data/annotations.tar.gz", optional=True,
               md5="95a8c909bbe2e81eed6a22bccdf3f68f"),  # torchvision datasets/oxford_iiit_pet.py
        split_file("OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    ],
    "StanfordCars": [  # the official links are dead (CoOp #61): see --from in DATASETS.md
        # MD5s: earlier torchvision releases, datasets/stanford_cars.py (dropped with the dead links)
        Source("cars_train.tgz", "cars_train", f"{CARS}/cars_train.tgz",
               md5="065e5b463ae28d29e77c1b4b166cfe61"),
        Source("cars_test.tgz", "cars_test", f"{CARS}/cars_test.tgz",
               md5="4ce7ebf6a94d07f1952d94dd34c4d501"),
        Source("car_devkit.tgz", "devkit", "https://ai.stanford.edu/~jkrause/cars/car_devkit.tgz",
               optional=True, md5="c3b158d763b6e2245038c8ad08e45376"),
        Source("cars_test_annos_withlabels.mat", "cars_test_annos_withlabels.mat",
               f"{CARS}/cars_test_annos_withlabels.mat", take=None, optional=True,
               md5="b0a2b23655a3edd16d84508592a98d10"),
        split_file("StanfordCars", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
    ],
    "OxfordFlowers": [
        Source("102flowers.tgz", "jpg", f"{VGG}/flowers/102/102flowers.tgz",
               md5="52808999861908f626f3c1f4e79d11fa"),  # torchvision datasets/flowers102.py
        Source("imagelabels.mat", "imagelabels.mat", f"{VGG}/flowers/102/imagelabels.mat", take=None,
               optional=True, md5="e0620be6f572b9609742df49c70aed4d"),  # torchvision datasets/flowers102.py
        Source("cat_to_name.json", "cat_to_name.json", drive_id="1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0",
               take=None, optional=True),
        split_file("OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    ],
    "Food101": [
        Source("food-101.tar.gz", "images", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
               take="food-101", md5="85eeb15f3717b99a5da872d97d918f87"),  # torchvision datasets/food101.py
        split_file("Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    ],
    "FGVCAircraft": [
        Source("fgvc-aircraft-2013b.tar.gz", "images",
               f"{VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz", take="fgvc-aircraft-2013b/data"),
    ],
    "SUN397": [  # the Princeton links are gone (CoOp #90): see --from in DATASETS.md
        Source("SUN397.tar.gz", "SUN397", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
               md5="8ca2778205c41d23104230ba66911c7a"),  # torchvision datasets/sun397.py
        Source("Partitions.zip", "ClassName.txt",
               "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip", optional=True),
        split_file("SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    ],
    "DescribableTextures": [
        Source("dtd-r1.0.1.tar.gz", "images", f"{VGG}/dtd/download/dtd-r1.0.1.tar.gz", take="dtd",
               md5="fff73e5086ae6bdbea199a49dfb8a4c1"),  # torchvision datasets/dtd.py
        split_file("DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    ],
    "EuroSAT": [
        # torchvision datasets/eurosat.py (its copy of EuroSAT.zip on Hugging Face; torchvision
        # releases gave the same MD5 for this madm.dfki.de URL)
        Source("EuroSAT.zip", "2750", "http://madm.dfki.de/files/sentinel/EuroSAT.zip",
               md5="c8fa014336c82ac7804f0398fcb19387"),
        split_file("EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    ],
    "UCF101": [
        Source("UCF-101-midframes.zip", "UCF-101-midframes", drive_id="10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"),
        split_file("UCF101", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
    ],
    "ImageNet": [
        # MD5s: torchvision datasets/imagenet.py (ARCHIVE_META)
        Source("ILSVRC2012_img_train.tar", "images/train", into="images/train", manual=IMAGENET_SITE,
               md5="1d675b47d978889d74fa0da5fadfb00e"),
        Source("ILSVRC2012_img_val.tar", "images/val", into="images/val", manual=IMAGENET_SITE,
               md5="29b22e2961454d5413ddabcf34fc5622"),
        Source("ILSVRC2012_devkit_t12.tar.gz", "devkit", take="ILSVRC2012_devkit_t12", into="devkit",
               manual=IMAGENET_SITE, md5="fa75699e90414af021442c21a62c3abf"),
        CLASSNAMES,
    ],
    "ImageNetV2": [
        Source("imagenetv2-matched-frequency.tar.gz", "imagenetv2-matched-frequency-format-val",
               "https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz"),
        CLASSNAMES,
    ],
    "ImageNetSketch": [
        Source("ImageNet-Sketch.zip", "images", take="sketch", into="images",
               manual="https://github.com/HaohanWang/ImageNet-Sketch (Kaggle or Google Drive link there)"),
        CLASSNAMES,
    ],
    "ImageNetA": [
        Source("imagenet-a.tar", "imagenet-a", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar",
               md5="c3e55429088dc681f30d81f4726b6595"),  # pytorch-ood ImageNetA (kkirchheim/pytorch-ood)
        CLASSNAMES,
    ],
    "ImageNetR": [
        Source("imagenet-r.tar", "imagenet-r", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar",
               md5="a61312130a589d0ca1a8fca1f2bd3337"),  # pytorch-ood ImageNetR (kkirchheim/pytorch-ood)
        CLASSNAMES,
    ],
}


# Files with no published checksum, verified only by reading them (see the module's doc).
UNVERIFIABLE = sorted({s.filename for sources in SOURCES.values() for s in sources
                       if s.md5 is None and s.sha256 is None})
