"""ImageFolder: one's own class folders train every method through train.py, no code."""
import json
import os
import os.path as osp

import datasets  # noqa: F401
from dassl.data.datasets import DATASET_REGISTRY
from datasets.check import check_dataset
from tests import dataset_trees
from tests.helpers import CONFIGS, run_cli, tiny_opts
from trainers.defaults import default_cfg
from trainers.templates import ensemble_templates, template_for

CLASSES = ["red_fox", "barn_owl", "sea_otter", "koala"]


def build(root, folder, **kwargs):
    cfg = default_cfg()
    cfg.DATASET.NAME, cfg.DATASET.ROOT, cfg.DATASET.IMAGEFOLDER.DIR = "ImageFolder", str(root), folder
    for key, value in kwargs.items():
        setattr(cfg.DATASET, key, value)
    return DATASET_REGISTRY.get("ImageFolder")(cfg), cfg


def test_class_folders_are_split_once_with_their_own_generator(tmp_path):
    dataset_trees.folder_classes(str(tmp_path / "mine"), CLASSES, 10)
    ds, cfg = build(tmp_path, "mine")
    # labels follow sorted folder names; 10 images: 5 train, 2 val, 3 test per class
    assert ds.classnames == sorted(CLASSES)
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (20, 8, 12)
    split = json.load(open(tmp_path / "mine" / "split_zhou_ImageFolder.json"))
    assert split["train"][0][0].split("/")[0] == "barn_owl"  # paths relative to the folder
    again, _ = build(tmp_path, "mine")  # reads the file: same items whatever the run's seed
    assert [d.impath for d in again.test] == [d.impath for d in ds.test]
    assert template_for(cfg.DATASET) == "a photo of a {}."
    cfg.DATASET.IMAGEFOLDER.TEMPLATE = "a wildlife photo of a {}."
    assert ensemble_templates(cfg.DATASET)[-1] == "a wildlife photo of a {}."


def test_train_val_test_folders_and_classnames_file(tmp_path):
    base = tmp_path / "mine"
    for split, n in (("train", 4), ("val", 1), ("test", 2)):
        dataset_trees.folder_classes(str(base / split), CLASSES[:3], n)
    open(base / "classnames.txt", "w").write("red_fox Red Fox\nsea_otter sea otter\n")
    open(base / "train" / "red_fox" / "notes.txt", "w").write("not an image")
    ds, _ = build(tmp_path, "mine", NUM_SHOTS=2, SUBSAMPLE_CLASSES="new", SEED=1)
    assert ds.classnames == ["sea otter"] and len(ds.train_x) == 2 and len(ds.test) == 2
    full, _ = build(tmp_path, "mine")
    assert full.classnames == ["barn_owl", "Red Fox", "sea otter"]
    assert (len(full.train_x), len(full.val), len(full.test)) == (12, 3, 6)
    report = check_dataset("ImageFolder", str(tmp_path), "mine")
    assert report.state == "complete" and report.counts == {"train": 12, "val": 3, "test": 6}
    os.remove(base / "test" / "barn_owl" / "barn_owl_000.jpg")
    report = check_dataset("ImageFolder", str(tmp_path), "mine")
    assert report.state == "incomplete" and "barn_owl/barn_owl_000.jpg" in report.problems[0]


def test_train_py_coop_base_then_e2mim_new_at_4_shots(tmp_path, tiny_clip):
    dataset_trees.folder_classes(str(tmp_path / "data" / "mine"), CLASSES, 10)
    common = ["--root", tmp_path / "data", "--seed", 1, "--dataset-config-file",
              "configs/datasets/imagefolder.yaml", *tiny_opts(tiny_clip["tiny-ViT"]),
              "DATASET.IMAGEFOLDER.DIR", "mine", "DATASET.NUM_SHOTS", 4, "OPTIM.MAX_EPOCH", 1]
    split = tmp_path / "data" / "mine" / "split_zhou_ImageFolder.json"
    coop = run_cli(["--trainer", "CoOp", "--config-file", CONFIGS["CoOp"], "--output-dir",
                    tmp_path / "coop", *common, "DATASET.SUBSAMPLE_CLASSES", "base"], entry="train.py")
    assert "# classes  2" in coop.stdout and "# train_x  8" in coop.stdout
    assert "Saved split to" in coop.stdout and osp.exists(split)
    written = split.stat().st_mtime_ns
    e2mim = run_cli(["--trainer", "E2MIM", "--config-file", CONFIGS["E2MIM"], "--output-dir",
                     tmp_path / "e2mim", *common, "DATASET.SUBSAMPLE_CLASSES", "new"], entry="train.py")
    assert "Reading split from" in e2mim.stdout and split.stat().st_mtime_ns == written
    assert "# classes  2" in e2mim.stdout and "a photo of a {}." in e2mim.stdout
    assert "* accuracy:" in e2mim.stdout
    assert osp.exists(tmp_path / "data" / "mine" / "split_fewshot" / "shot_4-seed_1.pkl")

