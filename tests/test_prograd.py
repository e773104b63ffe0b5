"""trainers/prograd.py: the projected gradient against the formula, the zero-shot teacher
against OpenAI's CLIP, the template context, train.py end to end, upstream checkpoints and
configs."""
import glob
import math
import os.path as osp
import sys

import pytest
import torch

import train
from tests.helpers import REPO, make_trainer, parse_accuracy, tiny_opts
from tests.oracles import openai_clip
from tests.test_trainers import tiny_models, upstream_checkpoint
from trainers.prograd import prograd_direction


def prograd(tiny_clip, data, *opts, **kwargs):
    return make_trainer("ProGrad", data, tiny_clip["tiny-ViT"], "DATALOADER.TRAIN_X.BATCH_SIZE",
                        "6", *opts, **kwargs)


# ---------------------------------------------------------------- the projection
@pytest.mark.parametrize("lambda_", [1.0, 0.8])
def test_projection_on_a_toy_case_with_and_without_conflict(lambda_):
    # Conflict: g_ce = (1, 0), g_kl = (-1, 1), cos = -1/sqrt(2) < 0. With u = (-1, 1)/sqrt(2),
    # g_ce . u = -1/sqrt(2), so g = (1, 0) - lambda * (-1/sqrt(2)) * u = (1 - lambda/2, lambda/2).
    ce, kl = torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 1.0]])
    projected = prograd_direction(ce, kl, lambda_)
    assert projected.shape == ce.shape
    torch.testing.assert_close(projected, torch.tensor([[1 - lambda_ / 2, lambda_ / 2]]),
                               rtol=0, atol=1e-7)
    if lambda_ == 1.0:  # the whole conflicting component is gone
        assert abs(float((projected * kl).sum())) < 1e-7
    # No conflict (cos > 0, and cos = 0): the CE gradient, untouched.
    for aligned in ([[1.0, 1.0]], [[0.0, 3.0]]):
        assert torch.equal(prograd_direction(ce, torch.tensor(aligned), lambda_), ce)
    # A zero KL gradient (cosine NaN) leaves it untouched too, as upstream's "if".
    assert torch.equal(prograd_direction(ce, torch.zeros_like(kl), lambda_), ce)


def independent_step_gradient(trainer, reference, image, label, lambda_, temperature):
    """The prompt gradient of one ProGrad step, recomputed: the teacher from OpenAI's CLIP
    (fp32, the written template prompts at 77 positions), the two losses written out, their
    gradients by autograd, the projection in float64 with plain Python arithmetic."""
    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    with torch.no_grad():
        text = reference.encode_text(openai_clip().tokenize([f"a photo of a {n}." for n in names]))
        text = text / text.norm(dim=-1, keepdim=True)
        img = reference.encode_image(image)
        img = img / img.norm(dim=-1, keepdim=True)
        teacher = reference.logit_scale.exp() * img @ text.t()
    ctx = trainer.model.prompt_learner.ctx
    logits = trainer.model(image)
    ce = -torch.log_softmax(logits, 1)[torch.arange(len(label)), label].mean()
    p = torch.softmax(teacher / temperature, 1)
    kl = (-(p * torch.log_softmax(logits / temperature, 1)).sum(1)).mean() * temperature ** 2
    g_ce = torch.autograd.grad(ce, ctx, retain_graph=True)[0].double().flatten().tolist()
    g_kl = torch.autograd.grad(kl, ctx)[0].double().flatten().tolist()
    dot = sum(a * b for a, b in zip(g_ce, g_kl))
    norm_kl = math.sqrt(sum(b * b for b in g_kl))
    conflict = dot < 0
    if conflict:
        g_ce = [a - lambda_ * dot / norm_kl ** 2 * b for a, b in zip(g_ce, g_kl)]
    return teacher, torch.tensor(g_ce, dtype=torch.float64).reshape(ctx.shape), conflict


def test_step_gradient_is_the_projected_ce_gradient_with_and_without_conflict(
        tiny_clip, fake_caltech):
    _, reference = tiny_models(tiny_clip["tiny-ViT"])
    trainer = prograd(tiny_clip, fake_caltech, "LOSS.LAMBDA", "0.7", "LOSS.T", "2.0")
    learner = trainer.model.prompt_learner
    # The context starts as upstream's: zeros, then "a photo of a" in the last 4 vectors.
    assert learner.ctx.shape == (16, 64)
    assert torch.equal(learner.ctx[:12], torch.zeros(12, 64))
    tokens = openai_clip().tokenize(["a photo of a"])[0, 1:5]
    torch.testing.assert_close(learner.ctx[12:], reference.token_embedding(tokens), rtol=0, atol=0)
    with torch.no_grad():  # a context away from the start, where both terms have gradients
        learner.ctx.add_(0.05 * torch.randn(learner.ctx.shape,
                                            generator=torch.Generator().manual_seed(0)))

    images, _ = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    image = images.pixels
    seen = set()
    for rule in ("teacher's choice", "against the teacher"):
        # Labels that agree with the teacher, then labels that oppose it: the second
        # pulls CE against the teacher's direction (a conflict), the first does not.
        zero_shot = trainer.zero_shot_logits(trainer.model.image_features(image))
        label = zero_shot.argmax(1) if rule == "teacher's choice" else zero_shot.argmin(1)
        teacher, expected, conflict = independent_step_gradient(trainer, reference, image, label,
                                                                0.7, 2.0)
        seen.add(conflict)
        terms = trainer.compute_loss(images, label)
        assert set(terms) == {"loss", "logits", "kl_loss"}
        zero_shot = trainer.zero_shot_logits(trainer.model.image_features(image))
        torch.testing.assert_close(zero_shot, teacher, rtol=0, atol=1e-5)
        trainer.model_zero_grad()
        trainer.backward(terms)
        # fp32 against float64: equal up to rounding, relative to the gradient's size.
        scale = float(expected.abs().max())
        assert scale > 0
        torch.testing.assert_close(learner.ctx.grad.double(), expected, rtol=0, atol=1e-5 * scale)
    assert seen == {True, False}


# ---------------------------------------------------------------- train.py end to end
def _main(args):
    """train.py's main in this process; its log (a tee of stdout) closed after it."""
    console = sys.stdout
    try:
        train.main(train.build_parser().parse_args([str(a) for a in args]))
    finally:
        if sys.stdout is not console:
            sys.stdout.close()
            sys.stdout = console


def _log_accuracy(folder):
    with open(osp.join(folder, "log.txt")) as f:
        return parse_accuracy(f.read())


def test_train_eval_base_and_new_and_an_upstream_checkpoint_through_train_py(
        tiny_clip, fake_caltech, tmp_path):
    common = ["--root", fake_caltech, "--seed", 1, "--trainer", "ProGrad",
              "--dataset-config-file", "configs/datasets/caltech101.yaml",
              "--config-file", "configs/trainers/ProGrad/rn50_ep100.yaml"]
    tiny = tiny_opts(tiny_clip["tiny-ViT"])
    run = str(tmp_path / "base")
    _main(common + ["--output-dir", run, *tiny, "OPTIM.MAX_EPOCH", 2, "OPTIM.LR", 0.5,
                    "DATALOADER.TRAIN_X.BATCH_SIZE", 2, "DATASET.SUBSAMPLE_CLASSES", "base"])
    saved = torch.load(osp.join(run, "prompt_learner", "model.pth.tar-2"), weights_only=True)
    assert set(saved["state_dict"]) == {"ctx", "token_prefix", "token_suffix"}  # upstream's keys
    assert saved["state_dict"]["token_suffix"].shape == (2, 77 - 1 - 16, 64)
    for sub in ("base", "new"):
        _main(common + ["--output-dir", str(tmp_path / f"eval_{sub}"), "--model-dir", run,
                        "--load-epoch", 2, "--eval-only", *tiny, "DATASET.SUBSAMPLE_CLASSES", sub])
    assert _log_accuracy(tmp_path / "eval_base") == _log_accuracy(run)
    with open(tmp_path / "eval_new" / "log.txt") as f:
        log = f.read()
    assert "model.pth.tar-2" in log and "a photo of a leopard." not in log  # new classes only

    # A checkpoint as upstream ProGrad writes it (no val_result; token buffers of its own
    # 7 classes, ignored) evaluates with --eval-only --model-dir: the accuracy of a model
    # given that context directly.
    ctx = 0.3 * torch.randn(16, 64, generator=torch.Generator().manual_seed(5))
    upstream_checkpoint(str(tmp_path / "upstream"), {
        "ctx": ctx, "token_prefix": torch.zeros(7, 1, 64), "token_suffix": torch.zeros(7, 60, 64)},
        epoch=100)
    _main(common + ["--output-dir", str(tmp_path / "eval_upstream"), "--model-dir",
                    str(tmp_path / "upstream"), "--load-epoch", 100, "--eval-only", *tiny])
    direct = make_trainer("ProGrad", fake_caltech, tiny_clip["tiny-ViT"])
    with torch.no_grad():
        direct.model.prompt_learner.ctx.copy_(ctx)
    assert _log_accuracy(tmp_path / "eval_upstream") == round(direct.test(), 1)


# ---------------------------------------------------------------- configs and scripts
@pytest.mark.parametrize("path", sorted(glob.glob(osp.join(REPO, "configs/trainers/ProGrad/*.yaml"))))
def test_published_configs_merge_unchanged(path):
    args = train.build_parser().parse_args(["--trainer", "ProGrad", "--config-file", path])
    cfg = train.setup_cfg(args)
    assert cfg.LOSS.NAME == "prograd" and cfg.LOSS.T == 1.0
    assert cfg.TRAINER.COOP.CTX_INIT is True and cfg.TRAINER.COOP.N_CTX == 16
    assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR == 0.002 and cfg.OPTIM.WARMUP_EPOCH == 1


def test_grid_runs_upstreams_settings(tmp_path):
    """The protocols' jobs (runs/grid.py, which the scripts and the sweep read): upstream's
    configs per protocol and LOSS.LAMBDA (the scripts' LAMBDA=... replaces it)."""
    from runs.grid import Settings, tasks

    settings = Settings(str(tmp_path))
    (train_job, _), = tasks("base2new", ["ProGrad"], ["caltech101"], [1], [4], settings)
    args = " ".join(train_job.argv())
    assert "configs/trainers/ProGrad/rn50_ep100.yaml" in args and "LOSS.LAMBDA 1.0" in args
    assert "DATASET.NUM_SHOTS 4 DATASET.SUBSAMPLE_CLASSES base" in args
    assert "base2new/train_base/caltech101/shots_4/ProGrad/rn50_ep100/seed1" in args
    lam = Settings(str(tmp_path), method_opts=("LOSS.LAMBDA", "0.8"))
    (job,), = tasks("fewshot", ["ProGrad"], ["dtd"], [2], [16], lam)
    assert "configs/trainers/ProGrad/rn50.yaml" in " ".join(job.argv())
    assert "LOSS.LAMBDA 0.8" in " ".join(job.argv())
    (xd_train, *_), = tasks("xd", ["ProGrad"], ["caltech101"], [1], [16], settings)
    assert "configs/trainers/ProGrad/rn50_ep50.yaml" in " ".join(xd_train.argv())
    assert "imagenet" in " ".join(xd_train.argv())
