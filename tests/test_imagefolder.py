"""ImageFolder: one's own class folders train every method through train.py, no code."""
import json
import os
import os.path as osp

import torch

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



def test_class_folders_with_no_or_too_few_images_are_named_with_the_fix(tmp_path):
    import pytest

    from datasets.errors import DataFileError

    dataset_trees.folder_classes(str(tmp_path / "mine"), CLASSES[:2], 10)
    os.makedirs(tmp_path / "mine" / "empty_class")
    open(tmp_path / "mine" / "empty_class" / "readme.txt", "w").write("no images")
    with pytest.raises(DataFileError) as info:
        build(tmp_path, "mine")
    assert str(info.value).startswith(f"{tmp_path / 'mine' / 'empty_class'}: class empty_class has 0 "
                                      "images, too few to split into train, val and test")
    assert "add images, or remove the folder" in str(info.value)
    os.remove(tmp_path / "mine" / "empty_class" / "readme.txt")
    dataset_trees.folder_classes(str(tmp_path / "mine"), ["empty_class"], 3)  # 3: no test image left
    with pytest.raises(DataFileError, match="class empty_class has 3 images, too few"):
        build(tmp_path, "mine")
    assert not osp.exists(tmp_path / "mine" / "split_zhou_ImageFolder.json")

    base = tmp_path / "layout"
    for split in ("train", "test"):
        dataset_trees.folder_classes(str(base / split), CLASSES[:2], 4)
    os.makedirs(base / "test" / "koala")
    with pytest.raises(DataFileError) as info:
        build(tmp_path, "layout")
    assert str(info.value).startswith(f"{base / 'test' / 'koala'}: a class folder with no images")
    os.rmdir(base / "test" / "koala")
    dataset_trees.folder_classes(str(base / "train"), ["koala"], 2)  # 2 images: no val share of 0.2
    with pytest.raises(DataFileError) as info:
        build(tmp_path, "layout")
    assert str(info.value).startswith(f"{base / 'train'}: class koala has 2 training images")
    assert "or add a val/ folder" in str(info.value)


def imagefolder_trainer(tmp_path, tiny_clip, name, *opts):
    """A trainer on an ImageFolder tree whose template is not the default one, built as
    train.py builds it."""
    import train
    from dassl.engine import build_trainer
    from dassl.utils import set_random_seed

    dataset_trees.folder_classes(str(tmp_path / "data" / "mine"), CLASSES, 4)
    args = train.build_parser().parse_args(
        ["--root", str(tmp_path / "data"), "--seed", "1", "--trainer", name,
         "--config-file", CONFIGS[name], "--dataset-config-file", "configs/datasets/imagefolder.yaml",
         "--output-dir", str(tmp_path / "out"), *tiny_opts(tiny_clip["tiny-ViT"]),
         "DATASET.IMAGEFOLDER.DIR", "mine", "DATASET.IMAGEFOLDER.TEMPLATE", "a snapshot of my {}.",
         *opts])
    cfg = train.setup_cfg(args)
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def folder_template_features(trainer):
    """Frozen fp32 CLIP's normalised features of the folder's template, computed here."""
    from trainers.clip_prompting import load_clip_to_cpu, normalize, tokenize_prompts

    clip_model = load_clip_to_cpu(trainer.cfg).float()
    prompts = [f"a snapshot of my {name.replace('_', ' ')}." for name in trainer.dm.dataset.classnames]
    with torch.no_grad():
        return normalize(clip_model.encode_text(tokenize_prompts(prompts)))


def test_prograd_uses_the_folders_template_for_teacher_and_context(tmp_path, tiny_clip):
    trainer = imagefolder_trainer(tmp_path, tiny_clip, "ProGrad", "TRAINER.COOP.CTX_INIT", "True",
                                  "TRAINER.COOP.N_CTX", "6")
    torch.testing.assert_close(trainer.model.hand_crafted_text_features,
                               folder_template_features(trainer), rtol=0, atol=1e-6)
    # The context starts from the template's words ("a snapshot of my") after zeros.
    from trainers.clip_prompting import load_clip_to_cpu, tokenize_prompts

    ctx = trainer.model.prompt_learner.ctx
    clip_model = load_clip_to_cpu(trainer.cfg).float()
    with torch.no_grad():
        embedding = clip_model.token_embedding(tokenize_prompts(["a snapshot of my"]))[0, 1:5]
    assert torch.equal(ctx[:2], torch.zeros(2, ctx.shape[1]))
    torch.testing.assert_close(ctx[2:], embedding, rtol=0, atol=0)


def test_tsne_hand_crafted_view_uses_the_folders_template(tmp_path, tiny_clip):
    from tools import tsne

    trainer = imagefolder_trainer(tmp_path, tiny_clip, "CoOp")
    _, _, hand, _ = tsne.features(trainer)
    torch.testing.assert_close(torch.from_numpy(hand), folder_template_features(trainer),
                               rtol=0, atol=1e-6)
