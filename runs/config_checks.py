"""Settings that would make a run fail late, or silently do something else,
refused before any work, naming the key, the value and what is allowed.

Method-specific choices (PREC, the learned context's length, E2MIM's rules) are
checked by each trainer's ``check_cfg``; this covers the data, loader and backbone
keys every run shares.
"""
from clip.shapes import MODEL_SHAPES
from datasets.config import check_choices
from datasets.errors import ConfigError
from trainers.clip_prompting import check_input_size


def validate_cfg(cfg):
    shots = cfg.DATASET.NUM_SHOTS
    if shots != -1 and shots < 1:
        raise ConfigError(f"DATASET.NUM_SHOTS must be -1 (all images) or at least 1; got {shots}")
    check_choices(cfg)
    for loader in ("TRAIN_X", "TEST"):
        size = cfg.DATALOADER[loader].BATCH_SIZE
        if size < 1:
            raise ConfigError(f"DATALOADER.{loader}.BATCH_SIZE must be at least 1; got {size}")
    if cfg.DATALOADER.NUM_WORKERS < 0:
        raise ConfigError(f"DATALOADER.NUM_WORKERS must be 0 or more; got "
                          f"{cfg.DATALOADER.NUM_WORKERS}")
    shape = MODEL_SHAPES.get(cfg.MODEL.BACKBONE.NAME)
    if shape is not None:  # a release's (or the shipped model's) resolution, known unloaded
        check_input_size(cfg, resolution=shape[1])

