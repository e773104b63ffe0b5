"""Learnable mutual-information estimators: a critic T(a, b) and a variational bound.

Joint pairs are (a_k, b_k); product-of-marginals pairs are (a_k, b_pi(k)) with pi a
random derangement, which the caller draws (``random_derangement``) and passes.
The bounds (all maximised by the critic):

- ``jsd``: Deep InfoMax's Jensen-Shannon bound, E_joint[-softplus(-T)] - E_marg[softplus(T)]
  (not in nats: independent views give -2 log 2);
- ``dv``: MINE's Donsker-Varadhan bound, E_joint[T] - log E_marg[exp T], whose gradient
  uses a moving average of E_marg[exp T] in the denominator (MINE's bias correction);
- ``infonce``: mean_k [T(a_k, b_k) - log((1/N) sum_l exp T(a_k, b_l))], at most log N.
"""
import math
from itertools import pairwise

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from datasets.errors import ConfigError

from .defaults import CRITICS, ESTIMATORS

# What each bound gives for independent views with an optimal critic: the floor an
# MI estimate is read against (JSD's is not 0: it is not in nats).
INDEPENDENCE_FLOOR = {"jsd": -2 * math.log(2), "dv": 0.0, "infonce": 0.0}


class MLPCritic(nn.Module):
    """T(a, b) = MLP([a; b]) with ``layers`` hidden ReLU layers of width ``hidden``."""

    def __init__(self, dim, hidden=512, layers=1):
        super().__init__()
        widths = [2 * dim] + [hidden] * layers
        blocks = []
        for n_in, n_out in pairwise(widths):
            blocks += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
        blocks.append(nn.Linear(widths[-1], 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, a, b):
        return self.net(torch.cat([a, b], dim=-1)).squeeze(-1)


class BilinearCritic(nn.Module):
    """T(a, b) = a^T W b; W starts Xavier-uniform, or as the identity (``identity``:
    for two views in one space, T starts as their inner product)."""

    def __init__(self, dim, identity=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        if identity:
            nn.init.eye_(self.weight)
        else:
            nn.init.xavier_uniform_(self.weight)

    def forward(self, a, b):
        return ((a @ self.weight) * b).sum(-1)


def build_critic(name, dim, hidden=512, layers=1, identity=False):
    if name == "mlp":
        return MLPCritic(dim, hidden, layers)
    if name == "bilinear":
        return BilinearCritic(dim, identity)
    raise ConfigError(f"unknown critic {name!r}; valid: {', '.join(CRITICS)}")


def random_derangement(n, rng):
    """A permutation of range(n) with no fixed point (n >= 2)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def jsd_bound(joint, marginal):
    return -F.softplus(-joint).mean() - F.softplus(marginal).mean()


def infonce_bound(scores):
    """``scores[k, l] = T(a_k, b_l)``; the diagonal holds the joint pairs."""
    n = scores.shape[0]
    return (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean() + math.log(n)


class MutualInformationEstimator(nn.Module):
    """Critic + bound; ``forward(a, b, perm)`` returns the estimate Î (to be maximised).
    ``perm`` (a derangement of the N samples) forms the product-of-marginals pairs of
    ``jsd`` and ``dv``; ``infonce`` contrasts every pair and does not use it."""

    def __init__(self, dim, estimator="jsd", critic="mlp", hidden=512, layers=1, ema_rate=0.01,
                 identity=False):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
        self.estimator = estimator
        self.critic = build_critic(critic, dim, hidden, layers, identity)
        self.ema_rate = ema_rate
        # MINE's moving average of E_marg[exp T] (saved and resumed with the critic).
        self.register_buffer("marginal_ema", torch.tensor(float("nan")))

    def forward(self, a, b, perm=None):
        n = a.shape[0]
        if n < 2:
            raise ValueError("a mutual-information estimate needs at least 2 samples "
                             "(product-of-marginals pairs pair a sample with another one)")
        if self.estimator == "infonce":
            scores = self.critic(a.unsqueeze(1).expand(-1, n, -1), b.unsqueeze(0).expand(n, -1, -1))
            return infonce_bound(scores)
        if perm is None:
            raise ValueError(f"the {self.estimator} bound needs a derangement of the samples "
                             "(random_derangement) for its product-of-marginals pairs")
        perm = torch.as_tensor(perm, device=b.device)
        joint, marginal = self.critic(a, b), self.critic(a, b[perm])
        if self.estimator == "jsd":
            return jsd_bound(joint, marginal)
        return self._donsker_varadhan(joint, marginal)

    def _donsker_varadhan(self, joint, marginal):
        log_mean_exp = torch.logsumexp(marginal, dim=0) - math.log(marginal.shape[0])
        value = joint.mean() - log_mean_exp
        mean_exp = log_mean_exp.exp()
        if self.training:
            with torch.no_grad():
                if torch.isnan(self.marginal_ema):
                    self.marginal_ema.copy_(mean_exp)
                else:
                    self.marginal_ema.mul_(1 - self.ema_rate).add_(self.ema_rate * mean_exp)
        # Value of the DV bound, gradient of E_joint[T] - E_marg[exp T] / ema.
        surrogate = joint.mean() - mean_exp / self.marginal_ema.clamp_min(1e-12)
        return value.detach() + surrogate - surrogate.detach()
