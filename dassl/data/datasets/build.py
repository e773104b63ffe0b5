from dassl.utils import Registry, check_availability

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    avai_datasets = DATASET_REGISTRY.registered_names()
    try:
        check_availability(cfg.DATASET.NAME, avai_datasets)
    except ValueError as e:
        raise ValueError(f"Unknown dataset (DATASET.NAME): {e}") from None
    if cfg.VERBOSE:
        print(f"Loading dataset: {cfg.DATASET.NAME}")
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)
