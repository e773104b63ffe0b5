"""Class-wise Mixup: every sample is mixed with a partner of *another* class.

Random choices (the per-batch coin, partners, mixing weights) come from the
NumPy generator the caller passes for the step (random_streams.stream_generator:
seeded by run seed, stream, epoch and batch), never from the global RNGs that drive
batch sampling and augmentation: the same seed gives the same mixes, a resumed run
mixes exactly as an uninterrupted one, and a run that never mixes sees the same
batches as one without Mixup.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from datasets.errors import ConfigError


@dataclass
class MixPlan:
    """Mixed sample k = lam[k] * item[first[k]] + (1 - lam[k]) * item[partner[k]]."""

    first: torch.Tensor  # (M,) indices into the batch
    partner: torch.Tensor  # (M,) indices into the batch, always of another class
    lam: torch.Tensor  # (M,) mixing weights in [0, 1]


class ClassWiseMixup:
    def __init__(self, alpha, prob):
        if alpha <= 0:
            raise ConfigError(f"MIXUP_ALPHA must be > 0 (Beta(alpha, alpha)); got {alpha}")
        if not 0 <= prob <= 1:
            raise ConfigError(f"MIXUP_PROB must be in [0, 1]; got {prob}")
        self.alpha, self.prob = alpha, prob

    def plan(self, labels, rng):
        """A MixPlan for this batch, or None (coin says no, or a single-class batch);
        ``rng`` is the step's NumPy generator."""
        if self.prob == 0:
            return None
        if rng.random() >= self.prob:
            return None
        labels_np = labels.detach().cpu().numpy()
        other_class = labels_np[None, :] != labels_np[:, None]  # row i: i's candidates
        first = np.flatnonzero(other_class.any(axis=1))
        if not len(first):
            return None
        # Sample i takes its draw-th candidate, draw uniform below its candidate count.
        # One vector call draws exactly what one scalar call per sample, in order, would.
        draw = rng.integers(other_class[first].sum(axis=1))
        partner = np.argmax(np.cumsum(other_class[first], axis=1) > draw[:, None], axis=1)
        lam = rng.beta(self.alpha, self.alpha, size=len(first))
        device = labels.device
        return MixPlan(torch.as_tensor(first, device=device),
                       torch.as_tensor(partner, device=device),
                       torch.tensor(lam, device=device, dtype=torch.float32))


def mix(tensors, plan):
    """lam * tensors[first] + (1 - lam) * tensors[partner], lam broadcast over the rest."""
    lam = plan.lam.to(tensors.dtype).view(-1, *([1] * (tensors.dim() - 1)))
    return lam * tensors[plan.first] + (1 - lam) * tensors[plan.partner]


def soft_targets(labels, plan, num_classes):
    """lam * onehot(y_first) + (1 - lam) * onehot(y_partner); each row sums to 1."""
    onehot = F.one_hot(labels, num_classes).float()
    return mix(onehot, plan)


def soft_cross_entropy(logits, targets):
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
