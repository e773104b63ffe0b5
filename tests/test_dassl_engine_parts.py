"""Optimizers, schedulers, metrics, evaluator, checkpoints and the logger."""
import math
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from dassl.config import get_cfg_default
from dassl.evaluation import build_evaluator
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import (
    get_rng_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_random_seed,
    set_rng_state,
    setup_logger,
)


def _optim_cfg(**kw):
    cfg = get_cfg_default().OPTIM
    cfg.NAME, cfg.LR, cfg.MAX_EPOCH, cfg.LR_SCHEDULER = "sgd", 0.002, 10, "cosine"
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _lrs(cfg, epochs):
    model = nn.Linear(2, 2)
    optim = build_optimizer(model, cfg)
    sched = build_lr_scheduler(optim, cfg)
    lrs = []
    for _ in range(epochs):
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    return lrs, optim, sched


def test_constant_warmup_then_cosine_as_coop():
    lrs, _, _ = _lrs(_optim_cfg(WARMUP_EPOCH=1, WARMUP_TYPE="constant", WARMUP_CONS_LR=1e-5), 10)
    # Independent formula: epoch 0 at the warm-up lr, then cosine restarted at epoch 1.
    expected = [1e-5] + [0.002 * (1 + math.cos(math.pi * (e - 1) / 10)) / 2 for e in range(1, 10)]
    assert np.allclose(lrs, expected, rtol=1e-12, atol=0)


def test_linear_warmup_without_recount():
    lrs, _, _ = _lrs(_optim_cfg(WARMUP_EPOCH=2, WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-4,
                                WARMUP_RECOUNT=False), 6)
    # Upstream quirk kept: the hand-over epoch runs at the base lr, then torch's
    # chained cosine continues from it at step WARMUP_EPOCH + 1, so the curve is
    # base * (1 + cos(pi k / T)) / (1 + cos(pi * 2 / T)) for k = 3, 4, ...
    expected = [1e-4, 0.002 * 1 / 2, 0.002] + [
        0.002 * (1 + math.cos(math.pi * k / 10)) / (1 + math.cos(math.pi * 2 / 10))
        for k in range(3, 6)]
    assert np.allclose(lrs, expected, rtol=1e-12, atol=0)


def test_single_step_and_optimizer_hyperparameters():
    cfg = _optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=(3,), GAMMA=0.5, WEIGHT_DECAY=1e-3)
    lrs, optim, _ = _lrs(cfg, 5)
    assert np.allclose(lrs, [0.002] * 3 + [0.001] * 2)
    group = optim.param_groups[0]
    assert isinstance(optim, torch.optim.SGD)
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-3
    with pytest.raises(ValueError, match="sgdd"):
        build_optimizer(nn.Linear(1, 1), _optim_cfg(NAME="sgdd"))


def test_warmup_scheduler_state_round_trips_through_weights_only_checkpoint(tmp_path):
    cfg = _optim_cfg(WARMUP_EPOCH=1, WARMUP_TYPE="constant", WARMUP_CONS_LR=1e-5)
    _, optim, sched = _lrs(cfg, 4)
    save_checkpoint({"state_dict": {"w": torch.ones(1)}, "epoch": 4,
                     "optimizer": optim.state_dict(), "scheduler": sched.state_dict(),
                     "val_result": None}, str(tmp_path))
    ckpt = torch.load(tmp_path / "model.pth.tar-4", weights_only=True)
    lrs_after, optim2, sched2 = _lrs(cfg, 0)
    optim2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    continued = []
    for _ in range(3):
        optim.step(), sched.step(), optim2.step(), sched2.step()
        continued.append((optim.param_groups[0]["lr"], optim2.param_groups[0]["lr"]))
    assert all(a == b for a, b in continued)
    assert open(tmp_path / "checkpoint").read() == "model.pth.tar-4\n"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_corrupt_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "model.pth.tar-1"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(RuntimeError, match="model.pth.tar-1"):
        load_checkpoint(str(bad))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(str(tmp_path / "nothing.pth"))


def test_checkpoints_get_the_permissions_of_a_plain_file(tmp_path):
    """Written through a private temporary file, but readable as torch.save's own would be
    (0666 less the umask): a shared run folder stays shared."""
    old = os.umask(0o027)
    try:
        save_checkpoint({"state_dict": {}, "epoch": 1}, str(tmp_path), model_name="model.pth.tar-1")
        plain = tmp_path / "plain"
        plain.write_text("")
    finally:
        os.umask(old)
    expected = plain.stat().st_mode & 0o777
    assert expected == 0o640
    for name in ("model.pth.tar-1", "checkpoint"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.pth.tar-1")
    assert latest_checkpoint(str(tmp_path / "elsewhere")) is None


def test_rng_state_round_trip():
    set_random_seed(3)
    state = get_rng_state()
    first = (np.random.rand(), torch.rand(1).item(), __import__("random").random())
    set_random_seed(99)
    set_rng_state(state)
    assert (np.random.rand(), torch.rand(1).item(), __import__("random").random()) == first


def test_compute_accuracy_topk():
    output = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    target = torch.tensor([1, 1, 0, 2])
    top1, top2 = compute_accuracy(output, target, topk=(1, 2))
    assert top1.item() == 25.0 and top2.item() == 50.0


def test_classification_evaluator_against_direct_counts(capsys):
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    ev = build_evaluator(cfg, lab2cname={0: "a", 1: "b", 2: "c"})
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 3, generator=gen)
    labels = torch.randint(0, 3, (50,), generator=gen)
    ev.process(logits[:20], labels[:20])
    ev.process(logits[20:], labels[20:])
    res = ev.evaluate()
    pred = logits.argmax(1)
    assert res["accuracy"] == pytest.approx(100.0 * (pred == labels).float().mean().item())
    f1s = []
    for c in range(3):
        precision = ((pred == c) & (labels == c)).sum().item() / max((pred == c).sum().item(), 1)
        recall = ((pred == c) & (labels == c)).sum().item() / (labels == c).sum().item()
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    assert res["macro_f1"] == pytest.approx(100.0 * np.mean(f1s))
    per_class = [100.0 * (pred[labels == c] == c).float().mean().item() for c in range(3)]
    assert res["perclass_accuracy"] == pytest.approx(np.mean(per_class))
    assert f"* accuracy: {res['accuracy']:.1f}%" in capsys.readouterr().out


def test_logger_never_overwrites_a_log(tmp_path):
    saved = sys.stdout
    try:
        setup_logger(str(tmp_path))
        print("first")
        sys.stdout.close()
        sys.stdout = saved
        setup_logger(str(tmp_path))
        print("second")
        sys.stdout.close()
    finally:
        sys.stdout = saved
    logs = sorted(os.listdir(tmp_path))
    assert logs[0] == "log.txt" and logs[1].startswith("log.txt-") and len(logs) == 2
    assert open(tmp_path / "log.txt").read() == "first\n"
    assert open(tmp_path / logs[1]).read() == "second\n"
