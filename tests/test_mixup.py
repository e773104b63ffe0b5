"""trainers/mixup.py: class-wise Mixup partners, weights, targets and their random streams."""
import numpy as np
import pytest
import torch
from scipy import stats

from datasets.errors import ConfigError
from trainers.mixup import ClassWiseMixup, mix, soft_cross_entropy, soft_targets
from trainers.random_streams import MIXUP, stream_generator


def step(seed, epoch, batch):
    """The generator E2MIM passes for (run seed, epoch, batch)."""
    return stream_generator(seed, MIXUP, epoch, batch)


def labels(n=32, classes=5, seed=0):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


def test_partners_are_of_another_class_and_targets_sum_to_one():
    mixup = ClassWiseMixup(alpha=1.0, prob=1.0)
    for batch_idx in range(20):
        y = labels(seed=batch_idx)
        plan = mixup.plan(y, step(7, 0, batch_idx))
        assert plan is not None
        assert torch.all(y[plan.first] != y[plan.partner])
        assert torch.all((plan.lam >= 0) & (plan.lam <= 1))
        targets = soft_targets(y, plan, 5)
        torch.testing.assert_close(targets.sum(1), torch.ones(len(plan.first)))
        rows = torch.arange(len(plan.first))
        torch.testing.assert_close(targets[rows, y[plan.first]], plan.lam)
        torch.testing.assert_close(targets[rows, y[plan.partner]], 1 - plan.lam)


def test_every_item_with_another_class_in_its_batch_is_mixed():
    y = torch.tensor([0, 0, 0, 1])
    plan = ClassWiseMixup(1.0, 1.0).plan(y, step(0, 0, 0))
    assert plan.first.tolist() == [0, 1, 2, 3]
    assert plan.partner.tolist() == [3, 3, 3, plan.partner[3].item()]
    assert plan.partner[3].item() in (0, 1, 2)


def test_same_seed_same_mixes_other_step_other_mixes():
    y = labels()
    a = ClassWiseMixup(1.0, 1.0).plan(y, step(3, 2, 5))
    b = ClassWiseMixup(1.0, 1.0).plan(y, step(3, 2, 5))
    c = ClassWiseMixup(1.0, 1.0).plan(y, step(3, 2, 6))
    assert torch.equal(a.partner, b.partner) and torch.equal(a.lam, b.lam)
    assert not torch.equal(a.lam, c.lam)


def test_partner_draws_are_one_uniform_choice_per_sample_in_order():
    """The vectorised plan equals the plain definition: for each sample in batch order
    with a candidate of another class, one uniform draw among its candidates (in batch
    order), then the mixing weights, all from the (seed, epoch, batch) generator."""
    alpha, seed = 0.7, 5
    mixup = ClassWiseMixup(alpha, 1.0)
    shapes = np.random.default_rng(0)
    for batch_idx in range(100):
        labels = shapes.integers(0, shapes.integers(1, 6), size=shapes.integers(1, 40))
        rng = np.random.default_rng([seed, MIXUP, 2, batch_idx])
        rng.random()  # the per-batch coin
        first, partner = [], []
        for i, label in enumerate(labels):
            candidates = [j for j, other in enumerate(labels) if other != label]
            if candidates:
                first.append(i)
                partner.append(candidates[int(rng.integers(len(candidates)))])
        plan = mixup.plan(torch.as_tensor(labels), step(seed, 2, batch_idx))
        if not first:
            assert plan is None
            continue
        assert plan.first.tolist() == first and plan.partner.tolist() == partner
        expected_lam = rng.beta(alpha, alpha, size=len(first)).astype(np.float32)
        assert np.array_equal(plan.lam.numpy(), expected_lam)


def test_global_random_state_is_untouched():
    torch.manual_seed(0)
    np.random.seed(0)
    before = torch.get_rng_state(), np.random.get_state()[1].copy()
    ClassWiseMixup(1.0, 1.0).plan(labels(), step(1, 0, 0))
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])


def test_single_class_batch_and_probability():
    assert ClassWiseMixup(1.0, 1.0).plan(torch.zeros(8, dtype=torch.long), step(0, 0, 0)) is None
    assert ClassWiseMixup(1.0, 1.0).plan(torch.tensor([3]), step(0, 0, 0)) is None
    assert ClassWiseMixup(1.0, 0.0).plan(labels(), step(0, 0, 0)) is None
    half = ClassWiseMixup(1.0, 0.5)
    mixed = sum(half.plan(labels(), step(0, 0, i)) is not None for i in range(400))
    assert 150 < mixed < 250  # Binomial(400, 0.5): mean 200, std 10


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    mixup = ClassWiseMixup(alpha, 1.0)
    lam = torch.cat([mixup.plan(labels(64, 8, i), step(11, 0, i)).lam for i in range(60)]).numpy()
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_mix_and_soft_cross_entropy():
    y = torch.tensor([0, 1])
    plan = ClassWiseMixup(1.0, 1.0).plan(y, step(0, 0, 0))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mixed = mix(x, plan)
    lam = plan.lam
    torch.testing.assert_close(mixed[0], lam[0] * x[0] + (1 - lam[0]) * x[1])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    targets = soft_targets(y, plan, 2)
    expected = -(targets * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, targets), expected)
    hard = torch.nn.functional.one_hot(y, 2).float()
    torch.testing.assert_close(soft_cross_entropy(logits, hard),
                               torch.nn.functional.cross_entropy(logits, y))


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match="MIXUP_ALPHA must be > 0"):
        ClassWiseMixup(0.0, 1.0)
    with pytest.raises(ConfigError, match=r"MIXUP_PROB must be in \[0, 1\]"):
        ClassWiseMixup(1.0, 1.5)
