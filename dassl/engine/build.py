from dassl.utils import Registry, check_availability

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg):
    avai_trainers = TRAINER_REGISTRY.registered_names()
    try:
        check_availability(cfg.TRAINER.NAME, avai_trainers)
    except ValueError as e:
        raise ValueError(f"Unknown trainer (--trainer / TRAINER.NAME): {e}") from None
    if cfg.VERBOSE:
        print(f"Loading trainer: {cfg.TRAINER.NAME}")
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)
