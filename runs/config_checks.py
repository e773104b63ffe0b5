"""Settings that would make a run fail late, or silently do something else,
refused before any work, naming the key, the value and what is allowed.

Method-specific choices (PREC, E2MIM's rules) are checked by each trainer's
``check_cfg``; this covers the data, loader and backbone keys every run shares.
"""
from clip.shapes import MODEL_SHAPES
from datasets.config import check_choices
from datasets.errors import ConfigError
from trainers.clip_prompting import CONTEXT_LENGTH, check_input_size


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
    node = cfg.TRAINER.NAME.upper()  # a prompt learner's options: TRAINER.<NAME>.N_CTX
    if node in cfg.TRAINER and "N_CTX" in cfg.TRAINER[node]:
        check_context(cfg.TRAINER[node], f"TRAINER.{node}")
    shape = MODEL_SHAPES.get(cfg.MODEL.BACKBONE.NAME)
    if shape is not None:  # a release's (or the shipped model's) resolution, known unloaded
        check_input_size(cfg, resolution=shape[1])


def check_context(options, key):
    """The learned context must leave room in CLIP's 77 positions for SOS, at least a
    one-token class name, the full stop and EOS (the class names are checked once
    they are known, by the prompt learner)."""
    most = CONTEXT_LENGTH - 4
    if isinstance(options.CTX_INIT, bool) and options.CTX_INIT:
        raise ConfigError(f"{key}.CTX_INIT takes the initial words (e.g. \"a photo of a\"); "
                          "True is ProGrad's setting (its context starts from the dataset's "
                          "template): use --trainer ProGrad, or give the words")
    if options.CTX_INIT:
        words = len(options.CTX_INIT.replace("_", " ").split(" "))
        if words > most:
            raise ConfigError(f"{key}.CTX_INIT has {words} words; at most {most} fit CLIP's "
                              f"context of {CONTEXT_LENGTH} tokens with a class name")
    elif not 1 <= options.N_CTX <= most:
        raise ConfigError(f"{key}.N_CTX must be between 1 and {most} (CLIP's context holds "
                          f"{CONTEXT_LENGTH} tokens with SOS, class name, '.' and EOS); "
                          f"got {options.N_CTX}")
