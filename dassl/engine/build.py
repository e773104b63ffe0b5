from dassl.utils import Registry, build_from_registry

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg):
    return build_from_registry(TRAINER_REGISTRY, cfg.TRAINER.NAME,
                               "trainer (--trainer / TRAINER.NAME)", cfg, verbose=cfg.VERBOSE)
