"""The independent random streams of a run, all derived from its seed.

A method's own randomness (Mixup partners, the critic's initialisation, the
feature cache's augmented copies) draws from generators seeded by (run seed, stream id),
never from the global generators, so adding it leaves the batch order and the
augmentations of a seeded run exactly as CoOp's, and a resumed run can re-derive
any step's draws from (seed, epoch, batch). Stream ids are listed here, once,
so that no two users share one.
"""
import random
from contextlib import contextmanager

import numpy as np
import torch

MIXUP, DERANGEMENT, CRITIC_INIT = 0, 1, 2  # E2MIM
CACHE_AUGMENTATION, CACHE_CHOICE = 10, 11  # TRAIN.FEATURE_CACHE


def stream_seed(*entropy):
    """A 32-bit seed derived from ``entropy``, e.g. ``(run_seed, stream, epoch)``."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def stream_generator(run_seed, stream, epoch, batch=None, kind="numpy"):
    """The generator of one stream at one step: ``(run seed, stream, epoch, batch)``,
    or at one epoch without ``batch``. A NumPy ``Generator``, or with ``kind="torch"``
    a ``torch.Generator`` (for draws made with torch)."""
    entropy = [run_seed, stream, epoch] + ([] if batch is None else [batch])
    if kind == "torch":
        return torch.Generator().manual_seed(stream_seed(*entropy))
    return np.random.default_rng(entropy)


def run_seed(cfg):
    """The run's seed: ``cfg.SEED``, or a fresh one when it is negative (unseeded)."""
    return cfg.SEED if cfg.SEED >= 0 else int(np.random.SeedSequence().entropy % 2**32)


@contextmanager
def seeded_global_rngs(seed):
    """Seed Python's, NumPy's and torch's CPU generators (augmentations draw from all
    three) for the block, and give the caller's states back afterwards."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
