"""datasets/: CoOp's items, splits, few-shot caches and base/new classes on fake trees."""
import json
import math
import os
import os.path as osp
import pickle
import random
from collections import OrderedDict

import pytest

import datasets  # noqa: F401
from dassl.data.datasets import DATASET_REGISTRY, Datum
from tests import dataset_trees
from trainers.defaults import default_cfg

BENCHMARKS = ["Caltech101", "DescribableTextures", "Food101", "EuroSAT", "OxfordPets",
              "StanfordCars", "OxfordFlowers", "FGVCAircraft", "SUN397", "UCF101", "ImageNet"]
VARIANTS = ["ImageNetSketch", "ImageNetA", "ImageNetR", "ImageNetV2"]


def build(name, root, shots=-1, subsample="all", seed=1):
    cfg = default_cfg()
    cfg.DATASET.NAME, cfg.DATASET.ROOT = name, str(root)
    cfg.DATASET.NUM_SHOTS, cfg.DATASET.SUBSAMPLE_CLASSES, cfg.SEED = shots, subsample, seed
    random.seed(seed)  # what train.py does before building the dataset
    return DATASET_REGISTRY.get(name)(cfg)


def items(lst):
    return [(d.impath, d.label, d.classname) for d in lst]


EXPECTED_NAMES = {
    "Caltech101": ["face", "leopard", "accordion", "airplane"],  # capitals sort first
    "DescribableTextures": ["banded", "dotted", "zigzagged"],
    "Food101": ["apple_pie", "baklava", "pho"],
    "EuroSAT": ["Annual Crop Land", "Forest", "Odd", "Sea or Lake"],
    "OxfordPets": ["abyssinian", "american_bulldog", "bengal"],
    "StanfordCars": ["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 BMW M3 Coupe"],
    "OxfordFlowers": ["pink primrose", "sweet pea", "tiger lily"],
    "FGVCAircraft": ["707-320", "F/A-18", "BAE 146-200"],
    "SUN397": ["abbey", "outdoor apartment_building", "badlands"],
    "UCF101": ["Apply_Eye_Makeup", "Yo_Yo", "Archery"],
    "ImageNet": ["tench", "goldfish", "great white shark", "tiger shark"],
}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_full_splits_counts_names_and_split_file_reuse(name, tmp_path):
    n_classes = dataset_trees.BUILDERS[name](str(tmp_path))
    ds = build(name, tmp_path)
    assert ds.num_classes == n_classes
    assert ds.classnames == EXPECTED_NAMES[name]
    per_class = {lab: sum(1 for d in ds.train_x if d.label == lab) for lab in range(n_classes)}
    if name in ("Caltech101", "DescribableTextures", "Food101", "EuroSAT", "OxfordFlowers"):
        assert set(per_class.values()) == {2}  # 5 images: round(2.5)=2 train, 1 val, 2 test
        assert len(ds.val) == n_classes and len(ds.test) == 2 * n_classes
    elif name in ("OxfordPets", "StanfordCars", "SUN397", "UCF101"):
        assert set(per_class.values()) == {4} and len(ds.val) == n_classes  # 80/20 of 5
        assert len(ds.test) == 2 * n_classes
    elif name == "FGVCAircraft":
        assert len(ds.train_x) == len(ds.val) == len(ds.test) == 9
    elif name == "ImageNet":
        assert len(ds.train_x) == 20 and ds.val is ds.test and len(ds.test) == 8
    for d in ds.train_x + ds.test:
        assert osp.isfile(d.impath) and osp.isabs(d.impath) and d.domain == 0
    # a second construction reads what the first one wrote and gives the same items
    again = build(name, tmp_path, seed=99)
    assert items(again.train_x) == items(ds.train_x) and items(again.test) == items(ds.test)
    split_file = osp.join(ds.dataset_dir, f"split_zhou_{name}.json")
    assert osp.exists(split_file) == (name not in ("FGVCAircraft", "ImageNet"))
    if name == "ImageNet":
        assert osp.exists(osp.join(ds.dataset_dir, "preprocessed.pkl"))
    assert osp.isdir(osp.join(ds.dataset_dir, "split_fewshot"))


def test_recipe_f_caltech_matches_independent_computation(tmp_path):
    dataset_trees.caltech101(str(tmp_path), per_class=9)
    ds = build("Caltech101", tmp_path)
    image_dir = osp.join(tmp_path, "caltech-101", "101_ObjectCategories")
    rename = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard"}
    random.seed(1)
    expected = {"train": [], "val": [], "test": []}
    folders = sorted(f for f in os.listdir(image_dir) if f not in ("BACKGROUND_Google", "Faces_easy"))
    for label, folder in enumerate(folders):
        paths = [osp.join(image_dir, folder, f) for f in os.listdir(osp.join(image_dir, folder))]
        random.shuffle(paths)
        n_train, n_val = round(len(paths) * 0.5), round(len(paths) * 0.2)  # 9 -> 4, 2, 3
        name = rename.get(folder, folder)
        expected["train"] += [(p, label, name) for p in paths[:n_train]]
        expected["val"] += [(p, label, name) for p in paths[n_train:n_train + n_val]]
        expected["test"] += [(p, label, name) for p in paths[n_train + n_val:]]
    assert items(ds.train_x) == expected["train"]
    assert items(ds.val) == expected["val"] and items(ds.test) == expected["test"]
    # the written split file stores paths relative to the image folder, upstream's format
    split = json.load(open(osp.join(tmp_path, "caltech-101", "split_zhou_Caltech101.json")))
    assert list(split) == ["train", "val", "test"]
    assert split["train"][0] == [osp.relpath(expected["train"][0][0], image_dir), 0, "face"]
    text = open(osp.join(tmp_path, "caltech-101", "split_zhou_Caltech101.json")).read()
    assert text == json.dumps(split, indent=4, separators=(",", ": "))


def test_recipe_t_pets_matches_independent_computation(tmp_path):
    dataset_trees.oxford_pets(str(tmp_path), per_class=6)
    ds = build("OxfordPets", tmp_path)
    base = osp.join(tmp_path, "oxford_pets")
    lines = open(osp.join(base, "annotations", "trainval.txt")).read().split("\n")[:-1]
    trainval = []
    for line in lines:
        name, cls, _, _ = line.split(" ")
        trainval.append((osp.join(base, "images", name + ".jpg"), int(cls) - 1,
                         "_".join(name.split("_")[:-1]).lower()))
    random.seed(1)
    groups = OrderedDict()
    for idx, item in enumerate(trainval):
        groups.setdefault(item[1], []).append(idx)
    train, val = [], []
    for idxs in groups.values():
        n_val = round(len(idxs) * 0.2)
        random.shuffle(idxs)
        val += [trainval[i] for i in idxs[:n_val]]
        train += [trainval[i] for i in idxs[n_val:]]
    assert items(ds.train_x) == train and items(ds.val) == val


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_fewshot_cache_written_reused_and_upstream_format(shots, tmp_path):
    dataset_trees.oxford_pets(str(tmp_path), per_class=10)
    full = build("OxfordPets", tmp_path)  # writes the split file first, like a first run
    ds = build("OxfordPets", tmp_path, shots=shots)
    cache = osp.join(tmp_path, "oxford_pets", "split_fewshot", f"shot_{shots}-seed_1.pkl")
    assert osp.exists(cache)
    k = min(shots, 8)  # 8 train items per class: fewer than K keeps them all
    assert len(ds.train_x) == 3 * k and len(ds.val) == 3 * min(shots, 2)
    # independent computation of the subset: read the split, seed, sample per label
    random.seed(1)
    expected = []
    for label in (0, 1, 2):
        members = [d for d in full.train_x if d.label == label]
        expected += random.sample(members, shots) if len(members) >= shots else members
    assert items(ds.train_x) == items(expected)
    data = pickle.load(open(cache, "rb"))
    assert set(data) == {"train", "val"} and all(type(d) is Datum for d in data["train"])
    # a second run reads the cache and draws nothing from Python's RNG
    random.seed(1)
    seeded = random.getstate()
    again = build("OxfordPets", tmp_path, shots=shots, seed=1)  # seeds with 1, then loads
    assert random.getstate() == seeded
    assert items(again.train_x) == items(ds.train_x) and items(again.val) == items(ds.val)


@pytest.mark.parametrize("subsample", ["base", "new"])
def test_base_new_subsampling_remaps_labels(subsample, tmp_path):
    dataset_trees.eurosat(str(tmp_path), per_class=5)  # 4 classes... plus one more below
    dataset_trees.folder_classes(osp.join(tmp_path, "eurosat", "2750"), ["River"], 5)
    all_ds = build("EuroSAT", tmp_path, shots=2)
    ds = build("EuroSAT", tmp_path, shots=2, subsample=subsample)
    n = 5
    m = math.ceil(n / 2)  # odd: base gets one more
    kept = list(range(m)) if subsample == "base" else list(range(m, n))
    assert ds.num_classes == len(kept)
    assert ds.classnames == [all_ds.classnames[i] for i in kept]
    for split_all, split in ((all_ds.train_x, ds.train_x), (all_ds.test, ds.test)):
        expected = [(d.impath, kept.index(d.label), d.classname) for d in split_all if d.label in kept]
        assert items(split) == expected


def test_imagenet_fewshot_train_only_and_variants(tmp_path):
    dataset_trees.imagenet(str(tmp_path))
    ds = build("ImageNet", tmp_path, shots=2, subsample="new")
    assert ds.classnames == ["great white shark", "tiger shark"] and len(ds.train_x) == 4
    data = pickle.load(open(osp.join(tmp_path, "imagenet", "split_fewshot", "shot_2-seed_1.pkl"), "rb"))
    assert set(data) == {"train"}
    assert ds.val is ds.test and len(ds.test) == 4
    for name in VARIANTS:
        n = dataset_trees.BUILDERS[name](str(tmp_path))
        v = build(name, tmp_path, shots=4, subsample="base")  # both ignored
        assert v.train_x is v.test and v.val is None
        assert v.num_classes == n if name != "ImageNetV2" else v.num_classes == 1000
    a = build("ImageNetA", tmp_path)
    assert a.classnames == ["goldfish", "great white shark"] and {d.label for d in a.test} == {0, 1}
    v2 = build("ImageNetV2", tmp_path)
    assert [(d.label, d.classname) for d in v2.test] == [(0, "class 0"), (7, "class 7"),
                                                         (999, "class 999")]


def test_missing_dataset_names_folder_files_and_docs(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build("OxfordPets", tmp_path)
    message = str(info.value)
    assert "OxfordPets" in message and osp.join(str(tmp_path), "oxford_pets") in message
    assert "annotations/trainval.txt" in message and "DATASETS.md" in message
    assert not osp.exists(osp.join(tmp_path, "oxford_pets"))  # nothing created


def test_corrupt_split_file_and_missing_image_name_the_files(tmp_path):
    dataset_trees.dtd(str(tmp_path))
    build("DescribableTextures", tmp_path)
    split_file = osp.join(tmp_path, "dtd", "split_zhou_DescribableTextures.json")
    text = open(split_file).read()
    open(split_file, "w").write(text[: len(text) // 2])
    with pytest.raises(ValueError, match="split_zhou_DescribableTextures.json"):
        build("DescribableTextures", tmp_path)
    open(split_file, "w").write(text)
    first = json.loads(text)["test"][0][0]
    os.remove(osp.join(tmp_path, "dtd", "images", first))
    with pytest.raises(FileNotFoundError) as info:
        build("DescribableTextures", tmp_path)
    assert "split_zhou_DescribableTextures.json" in str(info.value) and first in str(info.value)


def test_train_py_runs_on_a_benchmark_loader(tmp_path):
    from tests.helpers import run_cli

    dataset_trees.caltech101(str(tmp_path / "data"), per_class=9)
    out = str(tmp_path / "run")
    proc = run_cli(["--root", tmp_path / "data", "--seed", 1, "--trainer", "ToyLinear",
                    "--dataset-config-file", "configs/datasets/caltech101.yaml",
                    "--config-file", "configs/toy/toy_linear.yaml", "--output-dir", out,
                    "DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", "base"])
    assert "# classes  2" in proc.stdout and "# train_x  4" in proc.stdout
    assert osp.exists(osp.join(tmp_path, "data", "caltech-101", "split_fewshot",
                               "shot_2-seed_1.pkl"))
