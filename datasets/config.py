"""The ``DATASET.*`` keys this project adds to Dassl's defaults, and the one way every
layer declares a key's allowed values.

A key with a fixed set of values declares them beside its default with ``choice``;
``CHOICES`` collects them (these here, the trainers' in trainers/defaults.py) and
``check_choices`` refuses any other value before any work.
"""
from yacs.config import CfgNode as CN

from .benchmark import SUBSAMPLE_CHOICES
from .errors import ConfigError

CHOICES = {}  # "TRAINER.E2MIM.ESTIMATOR" -> its allowed values


def choice(cfg, key, default, allowed):
    """Set ``cfg.<key> = default`` and declare ``allowed`` as the key's only values."""
    *path, name = key.split(".")
    node = cfg
    for part in path:
        node = node[part]
    assert default in allowed, (key, default, allowed)
    node[name] = default
    CHOICES[key] = tuple(allowed)


def check_choices(cfg, prefix=""):
    """Every key declared with a fixed set of values under ``prefix`` holds one of them."""
    for key, allowed in CHOICES.items():
        if not key.startswith(prefix):
            continue
        value = cfg
        for part in key.split("."):
            value = value[part]
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def extend_dataset_cfg(cfg):
    """Add the datasets' keys to a Dassl config (trainers/defaults.py's ``extend_cfg``
    adds these and the methods')."""
    # Base-to-new protocol: keep all classes, the first half ("base") or the
    # second half ("new") of the labels, relabelled from 0.
    choice(cfg, "DATASET.SUBSAMPLE_CLASSES", "all", SUBSAMPLE_CHOICES)

    # SynthWorld, the embedded benchmark (datasets/synthworld.py): generated once
    # under DATASET.ROOT/synthworld with these settings.
    cfg.DATASET.SYNTHWORLD = CN()
    cfg.DATASET.SYNTHWORLD.SEED = 2024  # the world's own seed (not the run's)
    cfg.DATASET.SYNTHWORLD.N_COLOURS = 10  # classes = colours x shapes, colour-major
    cfg.DATASET.SYNTHWORLD.N_SHAPES = 10
    cfg.DATASET.SYNTHWORLD.TRAIN_PER_CLASS = 20
    cfg.DATASET.SYNTHWORLD.VAL_PER_CLASS = 4
    cfg.DATASET.SYNTHWORLD.TEST_PER_CLASS = 30
    # Degrees: the task's domain shift from pretraining. 20 puts SynthCLIP-Cone's zero-shot
    # accuracy on base and new classes in the releases' range (docs/SYNTHWORLD.md); the first
    # demo's configs (synthworld*.yaml on SynthCLIP-RN) keep their 30.
    cfg.DATASET.SYNTHWORLD.HUE_SHIFT = 20.0
    cfg.DATASET.SYNTHWORLD.IMAGE_SIZE = 32

    # ImageFolder, one's own images (datasets/imagefolder.py): DATASET.ROOT/<DIR>/ with
    # train/ val/ test/ class folders, or class folders split with these ratios (rest: test).
    cfg.DATASET.IMAGEFOLDER = CN()
    cfg.DATASET.IMAGEFOLDER.DIR = ""
    cfg.DATASET.IMAGEFOLDER.TEMPLATE = "a photo of a {}."  # hand-crafted prompt of every method
    cfg.DATASET.IMAGEFOLDER.TRAIN_RATIO = 0.5
    cfg.DATASET.IMAGEFOLDER.VAL_RATIO = 0.2
    cfg.DATASET.IMAGEFOLDER.SPLIT_SEED = 1  # the split's own seed: the same split for every run
