"""Opt-in cache of frozen image features for training (``TRAIN.FEATURE_CACHE``).

Prompt tuning never changes the image encoder, so an image under a given
augmentation always has the same feature. With the cache on, ``AUGMENTATIONS`` augmented
copies of every training image are encoded once, before the first epoch; an epoch
then costs only the text encoder and the method's own work.

Each epoch draws its batches exactly as the data loader it replaces (the same
batch sampler, the same draws from the global generator, so everything seeded
later is unchanged) and, for every image, one of its copies, chosen by a
generator seeded with (seed, epoch): a resumed run picks the same copies.

What changes is the augmentation: ``AUGMENTATIONS`` fixed copies per image instead of a
fresh one per epoch. That is why the cache is off by default, and a method whose
image path is not frozen (pixel-level Mixup) refuses it.
"""
import torch

from dassl.data.data_manager import build_data_loader
from datasets.errors import ConfigError

from .random_streams import (
    CACHE_AUGMENTATION,
    CACHE_CHOICE,
    seeded_global_rngs,
    stream_generator,
    stream_seed,
)


def check_feature_cache_cfg(cfg):
    options = cfg.TRAIN.FEATURE_CACHE
    if options.ENABLED and options.AUGMENTATIONS < 1:
        raise ConfigError(f"TRAIN.FEATURE_CACHE.AUGMENTATIONS must be >= 1 (augmented copies encoded "
                          f"per training image); got {options.AUGMENTATIONS}")


@torch.no_grad()
def encode_augmentations(encode, cfg, data_source, transform, copies, run_seed, device):
    """``(copies, N, D)`` features of ``copies`` augmented passes over ``data_source``
    (in its order), each pass under its own seed; ``encode`` maps images to features."""
    loader = build_data_loader(cfg, sampler_type="SequentialSampler", data_source=data_source,
                               batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=transform,
                               is_train=False)
    passes = []
    for copy in range(copies):
        with seeded_global_rngs(stream_seed(run_seed, CACHE_AUGMENTATION, copy)):
            passes.append(torch.cat([encode(batch["img"].to(device)) for batch in loader]))
        print(f"Feature cache: copy {copy + 1}/{copies} of {len(data_source)} images encoded")
    return torch.stack(passes)


class CachedFeatureLoader:
    """Stands in for the training data loader: batches of cached image features
    (``batch["features"]``, shape ``(B, D)``) with their labels."""

    def __init__(self, loader, features, labels, run_seed):
        self.loader = loader  # the data loader it replaces: its batch sampler decides the batches
        self.features = features  # (copies, N, D)
        self.labels = labels  # (N,)
        self.run_seed = run_seed
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        # A DataLoader iterator first draws its workers' base seed from the global
        # generator, then the sampler draws the epoch's order: the same draws here.
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        choice = stream_generator(self.run_seed, CACHE_CHOICE, self.epoch, kind="torch")
        n_copies, device = self.features.shape[0], self.features.device
        for indices in self.loader.batch_sampler:
            index = torch.as_tensor(indices, dtype=torch.long)
            copy = torch.randint(n_copies, (len(index),), generator=choice)
            yield {"features": self.features[copy.to(device), index.to(device)],
                   "label": self.labels[index], "index": index}
