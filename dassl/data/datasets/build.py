from dassl.utils import Registry, build_from_registry

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    return build_from_registry(DATASET_REGISTRY, cfg.DATASET.NAME, "dataset (DATASET.NAME)", cfg,
                               verbose=cfg.VERBOSE)
