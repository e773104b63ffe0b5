"""Samplers by name. Random and sequential samplers are torch's own, with no
generator of their own: the permutation of an epoch is drawn from the global
torch generator when the epoch's iterator is created (upstream behaviour, which
seeded runs depend on).

With several processes (dassl/utils/distributed.py) the training batches are the
ones a single process would draw, each cut into one contiguous share per rank
(``ShardedBatchSampler``), and an evaluation set is cut into equal contiguous
shares, the last one padded (``EvaluationShardSampler``).
"""
from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

from dassl.utils.distributed import split_sizes

AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler"]


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=16):
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    raise ValueError(f"Unknown sampler type [{sampler_type}]; available: {AVAI_SAMPLERS}")


class ShardedBatchSampler(Sampler):
    """This rank's share of each global batch of ``sampler``'s indices: the batches of one
    process with ``batch_size`` (same order, same last-batch rule), cut into contiguous
    shares in rank order; every rank draws the same order (their random states agree
    at each epoch's start)."""

    def __init__(self, sampler, batch_size, drop_last, rank, world_size):
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.rank, self.world_size = rank, world_size

    def share(self, batch):
        sizes = split_sizes(len(batch), self.world_size)
        start = sum(sizes[:self.rank])
        return batch[start:start + sizes[self.rank]]

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield self.share(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.share(batch)

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)


class EvaluationShardSampler(Sampler):
    """Rank r's contiguous ``ceil(n / N)`` items of an evaluation set, padded with the
    last item, so that every rank runs as many batches; the shares gathered in rank
    order start with the whole set in its order (``SimpleTrainer.test`` drops the rest)."""

    def __init__(self, data_source, rank, world_size):
        self.count = len(data_source)
        self.per_rank = -(-self.count // world_size)
        self.start = rank * self.per_rank

    def __iter__(self):
        stop = min(self.start + self.per_rank, self.count)
        indices = list(range(self.start, stop))
        return iter(indices + [self.count - 1] * (self.per_rank - len(indices)))

    def __len__(self):
        return self.per_rank
