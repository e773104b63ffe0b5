"""Tiny fake trees in the exact on-disk layout of each benchmark (creation form).

Each builder writes small real PNG files (with .jpg names, as the loaders expect)
and returns the number of classes it made.
"""
import json
import os
import os.path as osp

import numpy as np
import scipy.io as sio
from PIL import Image


def image(path, value=0):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.full((6, 6, 3), value % 256, np.uint8)).save(path, format="PNG")


def folder_classes(image_dir, folders, per_class):
    for c, name in enumerate(folders):
        for i in range(per_class):
            image(osp.join(image_dir, name, f"{name}_{i:03d}.jpg"), c * 30 + i)


def caltech101(root, per_class=5, seed=None):
    """With ``seed``: 12x12 images of a class colour plus noise, all drawn from that seed
    (the same pixels on every machine), for training runs compared with recorded ones."""
    folders = ["Faces", "airplanes", "Leopards", "accordion", "BACKGROUND_Google", "Faces_easy"]
    image_dir = osp.join(root, "caltech-101", "101_ObjectCategories")
    if seed is None:
        folder_classes(image_dir, folders, per_class)
        return 4
    rng = np.random.default_rng(seed)
    for name in folders:
        colour = rng.integers(0, 256, size=3)
        for i in range(per_class):
            noise = rng.integers(-60, 61, size=(12, 12, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            path = osp.join(image_dir, name, f"{name}_{i:03d}.jpg")
            os.makedirs(osp.dirname(path), exist_ok=True)
            Image.fromarray(pixels).save(path, format="PNG")
    return 4


def dtd(root, per_class=5):
    folder_classes(osp.join(root, "dtd", "images"), ["banded", "zigzagged", "dotted"], per_class)
    return 3


def food101(root, per_class=5):
    folder_classes(osp.join(root, "food-101", "images"), ["apple_pie", "pho", "baklava"], per_class)
    return 3


def eurosat(root, per_class=5):
    folder_classes(osp.join(root, "eurosat", "2750"), ["SeaLake", "AnnualCrop", "Forest", "Odd"],
                   per_class)
    return 4


def oxford_pets(root, per_class=5):
    base = osp.join(root, "oxford_pets")
    breeds = ["Abyssinian", "american_bulldog", "Bengal"]
    trainval, test = [], []
    for c, breed in enumerate(breeds):
        for i in range(per_class + 2):
            name = f"{breed}_{i + 1}"
            image(osp.join(base, "images", name + ".jpg"), c * 40 + i)
            (trainval if i < per_class else test).append(f"{name} {c + 1} {1 + c % 2} {c + 1}")
    os.makedirs(osp.join(base, "annotations"), exist_ok=True)
    # interleave classes so that "first appearance" order matters
    trainval = [trainval[j] for i in range(per_class) for j in range(i, len(trainval), per_class)]
    open(osp.join(base, "annotations", "trainval.txt"), "w").write("\n".join(trainval) + "\n")
    open(osp.join(base, "annotations", "test.txt"), "w").write("\n".join(test) + "\n")
    return 3


def stanford_cars(root, per_class=5):
    base = osp.join(root, "stanford_cars")
    names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "BMW M3 Coupe 2012"]

    def annotations(folder, n_per_class):
        records = []
        for c in range(len(names)):
            for i in range(n_per_class):
                fname = f"{c:02d}{i:03d}.jpg"
                image(osp.join(base, folder, fname), c * 50 + i)
                records.append((fname, c + 1))
        ann = np.zeros((1, len(records)), dtype=[("bbox_x1", "O"), ("fname", "O"), ("class", "O")])
        for k, (fname, cls) in enumerate(records):
            ann[0, k]["fname"] = np.array([fname])
            ann[0, k]["class"] = np.array([[cls]], dtype=np.uint8)
            ann[0, k]["bbox_x1"] = np.array([[1]])
        return ann

    os.makedirs(osp.join(base, "devkit"), exist_ok=True)
    sio.savemat(osp.join(base, "devkit", "cars_train_annos.mat"),
                {"annotations": annotations("cars_train", per_class)})
    sio.savemat(osp.join(base, "cars_test_annos_withlabels.mat"),
                {"annotations": annotations("cars_test", 2)})
    meta = np.empty((1, len(names)), dtype=object)
    for c, name in enumerate(names):
        meta[0, c] = np.array([name])
    sio.savemat(osp.join(base, "devkit", "cars_meta.mat"), {"class_names": meta})
    return 3


def oxford_flowers(root, per_class=5):
    base = osp.join(root, "oxford_flowers")
    labels = [3, 1, 2] * per_class  # first appearance: 3, 1, 2
    for i in range(len(labels)):
        image(osp.join(base, "jpg", f"image_{i + 1:05d}.jpg"), i)
    sio.savemat(osp.join(base, "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    json.dump({"1": "pink primrose", "2": "sweet pea", "3": "tiger lily"},
              open(osp.join(base, "cat_to_name.json"), "w"))
    return 3


def fgvc_aircraft(root, per_class=3):
    base = osp.join(root, "fgvc_aircraft")
    variants = ["707-320", "F/A-18", "BAE 146-200"]
    os.makedirs(base, exist_ok=True)
    open(osp.join(base, "variants.txt"), "w").write("\n".join(variants) + "\n")
    n = 0
    for split in ("train", "val", "test"):
        lines = []
        for c, variant in enumerate(variants):
            for _ in range(per_class):
                n += 1
                image(osp.join(base, "images", f"{n:07d}.jpg"), n)
                lines.append(f"{n:07d} {variant}")
        open(osp.join(base, f"images_variant_{split}.txt"), "w").write("\n".join(lines) + "\n")
    return 3


def sun397(root, per_class=5):
    base = osp.join(root, "sun397")
    classes = ["/a/abbey", "/a/apartment_building/outdoor", "/b/badlands"]
    def open_(name):
        return open(osp.join(base, name), "w")
    os.makedirs(base, exist_ok=True)
    open_("ClassName.txt").write("\n".join(classes) + "\n")
    train, test = [], []
    for c, cls in enumerate(classes):
        for i in range(per_class + 2):
            rel = f"{cls}/sun_{c}{i:03d}.jpg"
            image(osp.join(base, "SUN397", rel[1:]), c * 40 + i)
            (train if i < per_class else test).append(rel)
    open_("Training_01.txt").write("\n".join(train) + "\n")
    open_("Testing_01.txt").write("\n".join(test) + "\n")
    return 3


def ucf101(root, per_class=5):
    base = osp.join(root, "ucf101")
    actions = ["ApplyEyeMakeup", "YoYo", "Archery"]
    lists = osp.join(base, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    open(osp.join(lists, "classInd.txt"), "w").write(
        "\n".join(f"{c + 1} {a}" for c, a in enumerate(actions)) + "\n")
    train, test = [], []
    for c, action in enumerate(actions):
        renamed = {"ApplyEyeMakeup": "Apply_Eye_Makeup", "YoYo": "Yo_Yo"}.get(action, action)
        for i in range(per_class + 2):
            video = f"v_{action}_g{i + 1:02d}_c01"
            image(osp.join(base, "UCF-101-midframes", renamed, video + ".jpg"), c * 40 + i)
            if i < per_class:
                train.append(f"{action}/{video}.avi {c + 1}")
            else:
                test.append(f"{action}/{video}.avi")
    open(osp.join(lists, "trainlist01.txt"), "w").write("\n".join(train) + "\n")
    open(osp.join(lists, "testlist01.txt"), "w").write("\n".join(test) + "\n")
    return 3


WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]
NAMES = ["tench", "goldfish", "great white shark", "tiger shark"]


def _classnames(base, wnids=WNIDS, names=NAMES):
    os.makedirs(base, exist_ok=True)
    open(osp.join(base, "classnames.txt"), "w").write(
        "\n".join(f"{w} {n}" for w, n in zip(wnids, names)) + "\n")


def imagenet(root, per_class=5):
    base = osp.join(root, "imagenet")
    _classnames(base)
    folder_classes(osp.join(base, "images", "train"), WNIDS, per_class)
    folder_classes(osp.join(base, "images", "val"), WNIDS, 2)
    return 4


def imagenet_sketch(root, per_class=2):
    base = osp.join(root, "imagenet-sketch")
    _classnames(base)
    folder_classes(osp.join(base, "images"), WNIDS, per_class)
    return 4


def imagenet_a(root, per_class=2):
    base = osp.join(root, "imagenet-adversarial")
    _classnames(base)
    folder_classes(osp.join(base, "imagenet-a"), WNIDS[1:3], per_class)
    open(osp.join(base, "imagenet-a", "README.txt"), "w").write("readme")
    return 2


def imagenet_r(root, per_class=2):
    base = osp.join(root, "imagenet-rendition")
    _classnames(base)
    folder_classes(osp.join(base, "imagenet-r"), WNIDS[2:], per_class)
    return 2


def imagenetv2(root, per_class=1):
    base = osp.join(root, "imagenetv2")
    wnids = [f"n{i:08d}" for i in range(1000)]
    _classnames(base, wnids, [f"class {i}" for i in range(1000)])
    image_dir = osp.join(base, "imagenetv2-matched-frequency-format-val")
    for label in range(1000):
        os.makedirs(osp.join(image_dir, str(label)), exist_ok=True)
    for label in (0, 7, 999):
        image(osp.join(image_dir, str(label), "a.jpg"), label)
    return 1000


BUILDERS = {"Caltech101": caltech101, "DescribableTextures": dtd, "Food101": food101,
            "EuroSAT": eurosat, "OxfordPets": oxford_pets, "StanfordCars": stanford_cars,
            "OxfordFlowers": oxford_flowers, "FGVCAircraft": fgvc_aircraft, "SUN397": sun397,
            "UCF101": ucf101, "ImageNet": imagenet, "ImageNetSketch": imagenet_sketch,
            "ImageNetA": imagenet_a, "ImageNetR": imagenet_r, "ImageNetV2": imagenetv2}
