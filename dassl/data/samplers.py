"""Samplers by name. Random and sequential samplers are torch's own, with no
generator of their own: the permutation of an epoch is drawn from the global
torch generator when the epoch's iterator is created (upstream behaviour, which
seeded runs depend on).
"""
from torch.utils.data.sampler import RandomSampler, SequentialSampler

AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler"]


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=16):
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    raise ValueError(f"Unknown sampler type [{sampler_type}]; available: {AVAI_SAMPLERS}")
