"""Datum, DatasetBase, few-shot sampling, the data manager and transforms."""
import pickle
import random
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data import DatasetWrapper
from dassl.data.data_manager import build_data_loader
from dassl.data.datasets import DatasetBase, Datum
from dassl.data.transforms import build_transform


def make_items(tmp_path, labels, size=8):
    items = []
    for i, label in enumerate(labels):
        path = tmp_path / f"img_{i:03d}.png"
        Image.fromarray(np.full((size, size, 3), 10 * i % 255, np.uint8)).save(path)
        items.append(Datum(impath=str(path), label=label, classname=f"class_{label}"))
    return items


def test_datum_pickles_like_upstream(tmp_path):
    d = make_items(tmp_path, [3])[0]
    assert sorted(vars(d)) == ["_classname", "_domain", "_impath", "_label"]
    assert type(d).__module__ == "dassl.data.datasets.base_dataset"
    assert b"dassl.data.datasets.base_dataset" in pickle.dumps(d)
    # Upstream's check_isfile warns, then Datum asserts: both name the file.
    with pytest.warns(UserWarning, match="nothere.jpg"), \
            pytest.raises(AssertionError, match="nothere.jpg"):
        Datum(impath=str(tmp_path / "nothere.jpg"))


def test_dataset_base_classes_from_train_x(tmp_path):
    items = make_items(tmp_path, [4, 2, 2, 7])
    ds = DatasetBase(train_x=items, test=items)
    assert ds.num_classes == 8  # the largest label plus one
    assert ds.classnames == ["class_2", "class_4", "class_7"]
    assert ds.lab2cname == {2: "class_2", 4: "class_4", 7: "class_7"}
    with pytest.raises(ValueError, match="empty"):
        DatasetBase(train_x=[], test=items)


def test_fewshot_sampling_follows_the_contract(tmp_path):
    labels = [1, 0, 1, 2, 0, 1, 1, 2, 0, 0, 1]  # label 2 has fewer than 3 items
    items = make_items(tmp_path, labels)
    ds = DatasetBase(train_x=items, test=items)

    random.seed(5)
    picked, picked_val = ds.generate_fewshot_dataset(items, items, num_shots=3)

    # Independent computation: labels in first-seen order, random.sample per label
    # when it has enough items, the whole group otherwise, continuing the generator.
    random.seed(5)
    expected_all = []
    for _ in range(2):
        groups = OrderedDict()
        for item in items:
            groups.setdefault(item.label, []).append(item)
        expected = []
        for members in groups.values():
            expected += random.sample(members, 3) if len(members) >= 3 else members
        expected_all.append(expected)
    assert [d.impath for d in picked] == [d.impath for d in expected_all[0]]
    assert [d.impath for d in picked_val] == [d.impath for d in expected_all[1]]
    assert [d.label for d in picked][:3] == [1, 1, 1] and [d.label for d in picked][-2:] == [2, 2]
    # fewer than one shot returns the sources untouched
    assert ds.generate_fewshot_dataset(items, num_shots=-1) is items


def _cfg(**overrides):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (8, 8)
    cfg.DATALOADER.NUM_WORKERS = 0
    for key, value in overrides.items():
        node = cfg
        *path, last = key.split("__")
        for p in path:
            node = getattr(node, p)
        setattr(node, last, value)
    return cfg


def test_train_transform_order_is_fixed_whatever_the_names_order():
    cfg = _cfg(INPUT__TRANSFORMS=("normalize", "random_flip", "random_resized_crop"))
    names = [type(t).__name__ for t in build_transform(cfg, is_train=True).transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    cfg = _cfg(INPUT__TRANSFORMS=("random_flip",))
    names = [type(t).__name__ for t in build_transform(cfg, is_train=True).transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "ToTensor"]
    names = [type(t).__name__ for t in build_transform(cfg, is_train=False).transforms]
    assert names == ["Resize", "CenterCrop", "ToTensor"]
    with pytest.raises(ValueError, match="random_flipp"):
        build_transform(_cfg(INPUT__TRANSFORMS=("random_flipp",)))


def test_loader_drop_last_rule_and_wrapper_outputs(tmp_path):
    items = make_items(tmp_path, [0, 1, 0, 1, 0])
    cfg = _cfg(INPUT__TRANSFORMS=("random_flip", "normalize"), DATALOADER__RETURN_IMG0=True,
               DATALOADER__K_TRANSFORMS=2)
    tfm = build_transform(cfg, is_train=True)
    loader = build_data_loader(cfg, "RandomSampler", items, batch_size=2, tfm=tfm, is_train=True)
    assert loader.drop_last and len(loader) == 2
    small = build_data_loader(cfg, "RandomSampler", items, batch_size=8, tfm=tfm, is_train=True)
    assert not small.drop_last and len(small) == 1
    sample = DatasetWrapper(cfg, items, transform=tfm, is_train=True)[1]
    assert set(sample) == {"label", "domain", "impath", "index", "img", "img0"}
    assert isinstance(sample["img"], list) and len(sample["img"]) == 2
    assert sample["img0"].shape == (3, 8, 8) and sample["index"] == 1


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    cfg = _cfg()
    wrapper = DatasetWrapper(cfg, [Datum(impath=str(bad), label=0)], transform=None)
    with pytest.raises(OSError, match="broken.jpg"):
        wrapper[0]
