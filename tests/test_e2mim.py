"""trainers/e2mim.py: reductions to CoOp, Mixup wiring, the critic as a registered model,
inference rules, cached hand-crafted view, configuration errors."""
import json
import math
import os

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from datasets.errors import ConfigError
from tests.helpers import make_trainer
from tests.test_trainers import reference_text_features, tiny_models
from trainers.mixup import ClassWiseMixup
from trainers.mutual_information import MutualInformationEstimator, random_derangement
from trainers.random_streams import DERANGEMENT, MIXUP

# Mixup is off in the defaults and the hand-crafted view is the ensemble of templates;
# tests of Mixup and of the written "a photo of a {}." view switch them.
MIXUP_ON = ("TRAINER.E2MIM.MIXUP_PROB", "1.0")
DATASET_TEMPLATE = ("TRAINER.E2MIM.TEMPLATES", "dataset")


def e2mim(tiny_clip, data, *opts, **kwargs):
    return make_trainer("E2MIM", data, tiny_clip["tiny-ViT"], "DATALOADER.TRAIN_X.BATCH_SIZE",
                        "8", *opts, **kwargs)


def first_batch(trainer):
    return next(iter(trainer.train_loader_x))


def prompt_gradient(trainer, loss):
    ctx = trainer.model.prompt_learner.ctx
    ctx.grad = None
    loss.backward(inputs=[ctx])
    return ctx.grad.clone()


def test_without_mi_and_mixup_loss_and_gradients_equal_coops(tiny_clip, fake_caltech):
    coop = make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], "TRAINER.COOP.CTX_INIT",
                        "a photo of a", "DATALOADER.TRAIN_X.BATCH_SIZE", "8")
    coop_rng = torch.get_rng_state()
    ours = e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.W_MI", "0.0",
                 "TRAINER.E2MIM.MIXUP_PROB", "0.0")
    # Building E2MIM (critic included) draws nothing from the global RNG: the same batches.
    assert torch.equal(torch.get_rng_state(), coop_rng)
    with torch.no_grad():
        state = 0.1 * torch.randn_like(coop.model.prompt_learner.ctx)
        coop.model.prompt_learner.ctx.add_(state)
        ours.model.prompt_learner.ctx.add_(state)
    batch = first_batch(coop)
    image, label = coop.parse_batch_train(batch)
    ours.epoch, ours.batch_idx = 0, 0
    coop_loss = coop.compute_loss(image, label)["loss"]
    terms = ours.compute_loss(image, label)
    assert set(terms) == {"loss", "logits"}  # no Mixup term, no MI estimate
    our_loss = terms["loss"]
    torch.testing.assert_close(our_loss, coop_loss, rtol=0, atol=1e-6)
    torch.testing.assert_close(prompt_gradient(ours, our_loss), prompt_gradient(coop, coop_loss),
                               rtol=0, atol=1e-6)


def independent_objective(trainer, reference, image, label, w_mix, w_mi, temperature,
                          views="probabilities", mix_views=True):
    """E2MIM's objective recomputed from the batch: OpenAI's CLIP for the image features
    and the written hand-crafted prompts, the Mixup plan and derangement of the step's
    generators, and each formula written out. Returns (loss, loss_mix, mi)."""
    seed, n_cls = trainer.run_seed, trainer.num_classes
    with torch.no_grad():
        features = reference.encode_image(image)
        features = features / features.norm(dim=-1, keepdim=True)
        names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
        hand_crafted = reference_text_features(reference, [f"a photo of a {n}." for n in names])
    scale = reference.logit_scale.exp()
    text = trainer.model.text_features()  # the learned prompts (checked against OpenAI elsewhere)

    plan = ClassWiseMixup(1.0, 1.0).plan(label, np.random.default_rng([seed, MIXUP, 0, 0]))
    lam = plan.lam.view(-1, 1)
    mixed = lam * features[plan.first] + (1 - lam) * features[plan.partner]
    mixed = mixed / mixed.norm(dim=-1, keepdim=True)
    onehot = torch.eye(n_cls)
    targets = lam * onehot[label[plan.first]] + (1 - lam) * onehot[label[plan.partner]]
    logits, mixed_logits = scale * features @ text.t(), scale * mixed @ text.t()
    loss_mix = -(targets * mixed_logits.log_softmax(-1)).sum(-1).mean()

    if views == "text_features":  # each class's two text features, at CLIP's scale
        soft, hand = text, hand_crafted
        if mix_views:  # each mixed sample: its two classes' features mixed with its weight
            first, partner = label[plan.first], label[plan.partner]
            mixed_soft = lam * text[first] + (1 - lam) * text[partner]
            mixed_hand = lam * hand_crafted[first] + (1 - lam) * hand_crafted[partner]
            soft = torch.cat([soft, mixed_soft / mixed_soft.norm(dim=-1, keepdim=True)])
            hand = torch.cat([hand, mixed_hand / mixed_hand.norm(dim=-1, keepdim=True)])
        view_a, view_b = scale * soft, hand
    else:  # each sample's class probabilities under either view
        samples = torch.cat([features, mixed]) if mix_views else features
        sample_logits = torch.cat([logits, mixed_logits]) if mix_views else logits
        view_a = (sample_logits / temperature).softmax(-1)
        view_b = (scale * samples @ hand_crafted.t() / temperature).softmax(-1)
    n, critic = view_a.shape[0], trainer.critic.critic
    if trainer.critic.estimator == "infonce":
        scores = critic(view_a.unsqueeze(1).expand(-1, n, -1), view_b.unsqueeze(0).expand(n, -1, -1))
        mi = (scores.diagonal() - scores.logsumexp(1)).mean() + math.log(n)
    else:
        perm = random_derangement(n, np.random.default_rng([seed, DERANGEMENT, 0, 0]))
        joint, marginal = critic(view_a, view_b), critic(view_a, view_b[perm])
        if trainer.critic.estimator == "jsd":
            mi = -F.softplus(-joint).mean() - F.softplus(marginal).mean()
        else:  # dv: at the first step MINE's moving average is this batch's mean, so the
            # gradient of its surrogate is the gradient of the bound itself
            mi = joint.mean() - (marginal.logsumexp(0) - math.log(n))
    loss = F.cross_entropy(logits, label) + w_mix * loss_mix - w_mi * mi
    return loss, loss_mix, mi


def check_one_step(trainer, image, label, w_mix, w_mi, temperature, views, mix_views):
    """One training step's terms and gradient split against the independent computation:
    the prompt's gradient is that of CE + W_MIX softCE - W_MI Î; the critic's is that of
    -Î alone (not scaled by W_MI)."""
    _, reference = tiny_models(trainer.cfg.MODEL.BACKBONE.NAME)
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx = 0, 0
    trainer.model_zero_grad()
    terms = trainer.compute_loss(image, label)
    trainer.backward(terms)

    loss, loss_mix, mi = independent_objective(trainer, reference, image.pixels, label, w_mix, w_mi,
                                               temperature, views, mix_views)
    for name, value in (("loss", loss), ("loss_mix", loss_mix), ("mi", mi)):
        torch.testing.assert_close(terms[name], value, rtol=0, atol=2e-5, msg=name)
    ctx = trainer.model.prompt_learner.ctx
    critic_params = list(trainer.critic.parameters())
    assert_gradient_close(ctx.grad, torch.autograd.grad(loss, ctx, retain_graph=True)[0])
    for ours, expected in zip(critic_params, torch.autograd.grad(-mi, critic_params)):
        assert_gradient_close(ours.grad, expected)


# Two fp32 computations of one gradient (ours; OpenAI's CLIP with each formula written
# out) differ by the roundoff of the terms summed into each element (samples x classes),
# each after about 10^3 operations at fp32's unit roundoff 2^-24 (6e-8): about 6e-5 of the
# terms' size, whatever the element's own size. An element that cancels to a small value
# keeps its large terms' roundoff (measured 2.4e-6 on an element of 1.2e-2 whose largest
# neighbour is 10x larger: a relative check of 1e-4 held on the processor that recorded it
# and failed on another). So the bound is relative to the gradient's largest element
# (1e-4 of it), plus 1e-6 for a gradient that cancels as a whole (the critic's at its first
# step: 1.8e-4 at most, from terms of about 1e-2, so 6e-7; measured 3e-7 under avx512).
GRADIENT_TOLERANCE = (1e-4, 1e-6)  # (relative to the largest element, absolute)


def assert_gradient_close(actual, expected):
    relative, absolute = GRADIENT_TOLERANCE
    atol = relative * expected.abs().max().item() + absolute
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


def moved_prompt_step(tiny_clip, fake_caltech, *opts):
    """An E2MIM trainer whose prompt is moved off its hand-crafted start (so that the two
    views differ), and its first batch."""
    trainer = e2mim(tiny_clip, fake_caltech, *MIXUP_ON, *DATASET_TEMPLATE, *opts)
    ctx = trainer.model.prompt_learner.ctx
    with torch.no_grad():
        ctx.add_(0.1 * torch.randn(ctx.shape, generator=torch.Generator().manual_seed(0)))
    image, label = trainer.parse_batch_train(first_batch(trainer))
    return trainer, image, label


@pytest.mark.parametrize("estimator", ["jsd", "dv", "infonce"])
@pytest.mark.parametrize("mix_views", [True, False])
def test_probability_views_loss_terms_and_gradient_split_equal_an_independent_computation(
        tiny_clip, fake_caltech, estimator, mix_views):
    """Each sample's class probabilities under either prompt (and, with MIX_VIEWS, each
    mixed sample's) as the dual views."""
    w_mix, w_mi, temperature = 0.3, 2.5, 2.0
    trainer, image, label = moved_prompt_step(
        tiny_clip, fake_caltech, "TRAINER.E2MIM.VIEWS", "probabilities", "TRAINER.E2MIM.CRITIC",
        "mlp", "TRAINER.E2MIM.W_MIX", str(w_mix), "TRAINER.E2MIM.W_MI", str(w_mi),
        "TRAINER.E2MIM.ESTIMATOR", estimator, "TRAINER.E2MIM.TEMPERATURE", str(temperature),
        "TRAINER.E2MIM.MIX_VIEWS", str(mix_views))
    check_one_step(trainer, image, label, w_mix, w_mi, temperature, "probabilities", mix_views)


@pytest.mark.parametrize("estimator, critic", [("infonce", "bilinear"), ("jsd", "bilinear"),
                                               ("infonce", "mlp")])
@pytest.mark.parametrize("mix_views", [True, False])
def test_text_feature_views_loss_terms_and_gradient_split_equal_an_independent_computation(
        tiny_clip, fake_caltech, estimator, critic, mix_views):
    """The classes' soft and hand-crafted text features (and, with MIX_VIEWS, each mixed
    sample's two classes' features mixed with its weight) as the dual views, at CLIP's
    logit scale."""
    w_mix, w_mi = 0.3, 2.5
    trainer, image, label = moved_prompt_step(
        tiny_clip, fake_caltech, "TRAINER.E2MIM.VIEWS", "text_features", "TRAINER.E2MIM.CRITIC",
        critic, "TRAINER.E2MIM.W_MIX", str(w_mix), "TRAINER.E2MIM.W_MI", str(w_mi),
        "TRAINER.E2MIM.ESTIMATOR", estimator, "TRAINER.E2MIM.MIX_VIEWS", str(mix_views))
    if critic == "bilinear":  # it starts as the identity: T = s t_s . t_h
        weight = trainer.critic.critic.weight
        assert torch.equal(weight, torch.eye(weight.shape[0]))
    check_one_step(trainer, image, label, w_mix, w_mi, 1.0, "text_features", mix_views)


def test_mix_views_off_without_mixup_loss_plans_no_mixed_sample(tiny_clip, fake_caltech):
    """W_MIX 0 and MIX_VIEWS False: the MI sees the batch alone; no Mixup is planned."""
    trainer = e2mim(tiny_clip, fake_caltech, *MIXUP_ON, "TRAINER.E2MIM.VIEWS", "probabilities",
                    "TRAINER.E2MIM.W_MIX", "0.0", "TRAINER.E2MIM.MIX_VIEWS", "False")
    planned = []
    plan = trainer.mixup.plan
    trainer.mixup.plan = lambda *args: planned.append(1) or plan(*args)
    image, label = trainer.parse_batch_train(first_batch(trainer))
    trainer.epoch, trainer.batch_idx = 0, 0
    terms = trainer.compute_loss(image, label)
    assert not planned and "loss_mix" not in terms and "mi" in terms


@pytest.mark.parametrize("level, passes", [("feature", 1), ("image", 2)])
def test_mixup_level_and_image_encoder_passes(tiny_clip, fake_caltech, level, passes):
    trainer = e2mim(tiny_clip, fake_caltech, *MIXUP_ON, "TRAINER.E2MIM.MIXUP_LEVEL", level)
    calls = []
    trainer.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    image, label = trainer.parse_batch_train(first_batch(trainer))
    trainer.epoch, trainer.batch_idx = 0, 0
    terms = trainer.compute_loss(image, label)
    assert len(calls) == passes and "loss_mix" in terms


def test_one_epoch_updates_prompt_and_critic_and_encodes_hand_crafted_view_once(
        tiny_clip, fake_caltech):
    trainer = e2mim(tiny_clip, fake_caltech, "DATALOADER.TRAIN_X.BATCH_SIZE", "4", *MIXUP_ON,
                    *DATASET_TEMPLATE)
    assert trainer.get_model_names() == ["prompt_learner", "critic"]
    # The hand-crafted view is encoded as the soft view is (the run's CLIP and precision;
    # docs/UPSTREAM_DIFFERENCES.md, Teachers): both start as "a photo of a {}.", equal.
    with torch.no_grad():
        assert torch.equal(trainer.model.text_features(), trainer.model.hand_crafted_text_features)
    text_passes = []
    trainer.model.text_encoder.transformer.register_forward_hook(lambda *a: text_passes.append(1))
    ctx = trainer.model.prompt_learner.ctx.detach().clone()
    critic = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    hand_crafted = trainer.model.hand_crafted_text_features.clone()

    trainer.set_model_mode("train")
    trainer.epoch, trainer.num_batches = 0, len(trainer.train_loader_x)
    for trainer.batch_idx, batch in enumerate(trainer.train_loader_x):  # noqa: B020
        summary = trainer.forward_backward(batch)
    trainer.test()

    # One text pass per step for the soft prompts, one for the evaluation; none for
    # the hand-crafted view, encoded once when the model was built.
    assert len(text_passes) == trainer.num_batches + 1
    assert torch.equal(trainer.model.hand_crafted_text_features, hand_crafted)
    assert not torch.equal(trainer.model.prompt_learner.ctx, ctx)
    assert any(not torch.equal(v, critic[k]) for k, v in trainer.critic.state_dict().items())
    assert {"loss", "acc", "loss_mix", "mi"} <= set(summary)


def test_same_seed_same_numbers(tiny_clip, fake_caltech):
    def one_epoch():
        trainer = e2mim(tiny_clip, fake_caltech, "DATALOADER.TRAIN_X.BATCH_SIZE", "4")
        trainer.set_model_mode("train")
        trainer.epoch, trainer.num_batches = 0, len(trainer.train_loader_x)
        for trainer.batch_idx, batch in enumerate(trainer.train_loader_x):  # noqa: B020
            trainer.forward_backward(batch)
        return trainer.model.prompt_learner.ctx.detach().clone()

    assert torch.equal(one_epoch(), one_epoch())


@pytest.mark.parametrize("rule", ["soft", "ensemble"])
def test_inference_rules(tiny_clip, fake_caltech, rule):
    """Computed with CLIP's own encoders: a context initialised from words is those words'
    embeddings, so before training the soft view is CLIP's feature of "a picture of a
    <class>." and the hand-crafted view that of Caltech101's "a photo of a <class>."."""
    from clip import clip

    trainer = e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.INFERENCE", rule, *DATASET_TEMPLATE,
                    "TRAINER.E2MIM.ENSEMBLE_WEIGHT", "0.3", "TRAINER.E2MIM.CTX_INIT", "a picture of a")
    clip_model, _ = clip.load(tiny_clip["tiny-ViT"], device="cpu")
    names = trainer.dm.dataset.classnames
    image = next(iter(trainer.test_loader))["img"]
    with torch.no_grad():
        def features(texts):
            encoded = clip_model.encode_text(clip.tokenize(texts))
            return encoded / encoded.norm(dim=-1, keepdim=True)

        v = clip_model.encode_image(image)
        v = v / v.norm(dim=-1, keepdim=True)
        scale = clip_model.logit_scale.exp()
        soft = scale * v @ features([f"a picture of a {name}." for name in names]).t()
        hand = scale * v @ features([f"a photo of a {name}." for name in names]).t()
        expected = soft if rule == "soft" else 0.7 * soft + 0.3 * hand
        assert (soft - hand).abs().max() > 1e-3  # the rules differ on these images
        torch.testing.assert_close(trainer.model(image), expected, rtol=0, atol=1e-4)


def test_evaluation_on_another_class_list_neither_needs_nor_loads_the_critic(
        tiny_clip, fake_caltech, tmp_path):
    # The probability views' critic: its input size is the class count.
    probabilities = ("TRAINER.E2MIM.VIEWS", "probabilities", "TRAINER.E2MIM.CRITIC", "mlp")
    trained = e2mim(tiny_clip, fake_caltech, *probabilities, output_dir=str(tmp_path / "run"))
    trained.save_model(0, str(tmp_path / "run"))
    assert (tmp_path / "run" / "critic" / "model.pth.tar-1").is_file()
    new_classes = e2mim(tiny_clip, fake_caltech, *probabilities, "DATASET.SUBSAMPLE_CLASSES", "new")
    assert new_classes.critic.critic.net[0].in_features != trained.critic.critic.net[0].in_features
    new_classes.load_model(str(tmp_path / "run"), epoch=1)
    assert torch.equal(new_classes.model.prompt_learner.ctx, trained.model.prompt_learner.ctx)


@pytest.mark.parametrize("key, value, message", [
    ("TRAINER.E2MIM.ESTIMATOR", "nwj", "ESTIMATOR must be one of jsd, dv, infonce"),
    ("TRAINER.E2MIM.CRITIC", "deep", "CRITIC must be one of mlp, bilinear"),
    ("TRAINER.E2MIM.MIXUP_LEVEL", "pixel", "MIXUP_LEVEL must be one of feature, image"),
    ("TRAINER.E2MIM.INFERENCE", "vote", "INFERENCE must be one of soft, ensemble"),
    ("TRAINER.E2MIM.TEMPLATES", "all", "TEMPLATES must be one of dataset, ensemble"),
    ("DATALOADER.TRAIN_X.BATCH_SIZE", "1", "no such pair"),
])
def test_bad_settings_name_valid_values(tiny_clip, fake_caltech, key, value, message):
    with pytest.raises(ConfigError, match=message):
        e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.VIEWS", "probabilities", key, value)


def test_batch_of_one_is_fine_without_mi(tiny_clip, fake_caltech):
    trainer = e2mim(tiny_clip, fake_caltech, "DATALOADER.TRAIN_X.BATCH_SIZE", "1",
                    "TRAINER.E2MIM.W_MI", "0.0")
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 1
    summary = trainer.forward_backward(first_batch(trainer))
    assert "loss_mix" not in summary  # one sample, one class: nothing to mix


# ---------------------------------------------------------------- the critic's optimiser
def paper_protocol_cfg():
    import train

    args = train.build_parser().parse_args(
        ["--trainer", "E2MIM", "--config-file", "configs/trainers/E2MIM/vit_b16_ep50_ctxv1.yaml"])
    return train.setup_cfg(args)


def separation(optimizer_for, steps=300, n=64, classes=50):
    """Estimate on dependent minus independent probability pairs of a critic trained
    alone for ``steps`` steps with ``optimizer_for(critic)`` on each kind of pair."""
    estimates = []
    for dependent in (True, False):
        torch.manual_seed(0)
        gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
        critic = MutualInformationEstimator(classes)  # E2MIM's defaults: jsd, MLP 512
        optimizer, scheduler = optimizer_for(critic)
        for _ in range(steps):
            a = F.softmax(3 * torch.randn(n, classes, generator=gen), -1)
            b = a if dependent else F.softmax(3 * torch.randn(n, classes, generator=gen), -1)
            loss = -critic(a, b, random_derangement(n, rng))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()  # as if every step were an epoch: the most the schedule moves
        a = F.softmax(3 * torch.randn(512, classes, generator=gen), -1)
        b = a if dependent else F.softmax(3 * torch.randn(512, classes, generator=gen), -1)
        with torch.no_grad():
            estimates.append(critic(a, b, random_derangement(512, rng)).item())
    return estimates[0] - estimates[1]


def test_critic_separates_views_under_the_paper_protocol_optimiser_settings():
    """Under vit_b16_ep50_ctxv1.yaml (prompt: SGD 0.002 with a warm-up epoch at 1e-5),
    the critic's own optimiser separates dependent from independent views by at least
    half the margin of MINE's Adam at 1e-3; the prompt's optimiser would not."""
    from dassl.optim import build_lr_scheduler, build_optimizer
    from trainers.e2mim import build_critic_optimizer

    cfg = paper_protocol_cfg()
    assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR == 0.002 and cfg.OPTIM.WARMUP_EPOCH == 1
    adam = separation(lambda critic: (torch.optim.Adam(critic.parameters(), lr=1e-3), None))
    ours = separation(lambda critic: (build_critic_optimizer(critic, cfg.TRAINER.E2MIM,
                                                             cfg.OPTIM), None))

    def prompt_schedule(critic):
        optimizer = build_optimizer(critic, cfg.OPTIM)
        return optimizer, build_lr_scheduler(optimizer, cfg.OPTIM)

    assert adam > 0.5, adam  # a clear separation (measured: about 1.3)
    assert ours >= 0.5 * adam, (ours, adam)
    assert separation(prompt_schedule) < 0.1 * adam  # the first implementation's critic


def test_critic_lr_at_the_first_step_is_critic_lr_not_the_warm_up_lr(tiny_clip, fake_caltech):
    trainer = e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.CRITIC_LR", "0.0007")
    assert trainer.cfg.OPTIM.WARMUP_EPOCH == 1 and trainer.cfg.OPTIM.WARMUP_CONS_LR == 1e-5
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 1
    critic = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    trainer.forward_backward(first_batch(trainer))  # the last batch: update_lr runs too
    assert isinstance(trainer.critic_optim, torch.optim.Adam)
    assert trainer.critic_optim.param_groups[0]["lr"] == 0.0007
    assert trainer.get_current_lr() == pytest.approx(0.002)  # the prompt leaves its warm-up
    # Adam's first step moves every weight that has a gradient by about the LR.
    moved = [(v - critic[k]).abs().max().item() for k, v in trainer.critic.state_dict().items()
             if k.startswith("critic.")]
    assert max(moved) == pytest.approx(0.0007, rel=0.01)


def test_a_stop_between_saving_the_prompt_and_the_critic_resumes_both_from_one_epoch(
        tiny_clip, fake_caltech, tmp_path, monkeypatch, capsys):
    """The prompt learner's epoch-2 checkpoint is written, then the process dies before the
    critic's: on disk the prompt is at epoch 2, the critic at epoch 1. The same command again
    resumes both from epoch 1 (by the manifest written after every model's file, or, for a
    folder written before it existed, by the latest epoch both hold) and ends with exactly the
    weights of a run never stopped."""
    import dassl.engine.trainer as engine
    from dassl.utils import RUN_MANIFEST
    from runs.state import completed_epochs

    opts = ["OPTIM.MAX_EPOCH", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "4"]
    checkpoint = tiny_clip["tiny-ViT"]
    whole = make_trainer("E2MIM", fake_caltech, checkpoint, *opts, output_dir=str(tmp_path / "whole"))
    whole.train()

    class Killed(BaseException):
        pass

    real_save = engine.save_checkpoint

    def save_then_die_before_the_critic_of_epoch_2(state, fpath, **kwargs):
        if fpath.endswith("critic") and state["epoch"] == 2 and "batch" not in state:
            raise Killed
        return real_save(state, fpath, **kwargs)

    for manifest in ("kept", "absent"):
        run = tmp_path / manifest
        stopped = make_trainer("E2MIM", fake_caltech, checkpoint, *opts, output_dir=str(run))
        monkeypatch.setattr(engine, "save_checkpoint", save_then_die_before_the_critic_of_epoch_2)
        with pytest.raises(Killed):
            stopped.train()
        monkeypatch.setattr(engine, "save_checkpoint", real_save)
        assert open(run / "prompt_learner" / "checkpoint").read() == "model.pth.tar-2\n"
        assert open(run / "critic" / "checkpoint").read() == "model.pth.tar-1\n"
        assert json.load(open(run / RUN_MANIFEST))["file"] == "model.pth.tar-1"
        if manifest == "absent":  # a folder written before the manifest existed
            os.remove(run / RUN_MANIFEST)
        assert completed_epochs(str(run)) == 1

        resumed = make_trainer("E2MIM", fake_caltech, checkpoint, *opts, output_dir=str(run))
        capsys.readouterr()
        resumed.train()
        out = capsys.readouterr().out
        assert resumed.start_epoch == 1
        assert ("Note: the models' checkpoints in " + str(run) + " are of different moments "
                "(prompt_learner -> model.pth.tar-2, critic -> model.pth.tar-1)") in out
        assert "resuming all of them from model.pth.tar-1" in out
        for name in ("prompt_learner", "critic"):
            for key, value in whole._models[name].state_dict().items():
                other = resumed._models[name].state_dict()[key]
                assert torch.equal(value, other) or (value.isnan().all() and other.isnan().all()), key
        assert json.load(open(run / RUN_MANIFEST)) == {"file": "model.pth.tar-2",
                                                       "models": ["prompt_learner", "critic"]}


# ---------------------------------------------------------------- the critic is alive
def mi_estimates(tiny_clip, fake_caltech, critic_lr, epochs=10):
    """The MI estimate of every step of a small run (tiny CLIP, 4 classes, batch 4) with
    the class text features as the views, InfoNCE and a bilinear critic."""
    # The written template, Mixup's mixed classes and W_MI 1: on the tiny random CLIP the 4
    # classes' text features are almost alike, and at the defaults (ensemble of templates,
    # no Mixup, W_MI 0.3) the estimate stays near 0 for 30 steps (measured: -0.01).
    trainer = e2mim(tiny_clip, fake_caltech, "DATALOADER.TRAIN_X.BATCH_SIZE", "4", *MIXUP_ON,
                    *DATASET_TEMPLATE, "TRAINER.E2MIM.W_MI", "1.0", "OPTIM.NAME", "adam",
                    "OPTIM.LR", "0.01", "TRAINER.E2MIM.VIEWS", "text_features",
                    "TRAINER.E2MIM.ESTIMATOR", "infonce", "TRAINER.E2MIM.CRITIC", "bilinear",
                    "TRAINER.E2MIM.CRITIC_LR", str(critic_lr))
    trainer.set_model_mode("train")
    trainer.num_batches = len(trainer.train_loader_x)
    estimates = []
    for trainer.epoch in range(epochs):  # noqa: B020
        for trainer.batch_idx, batch in enumerate(trainer.train_loader_x):  # noqa: B020
            estimates.append(trainer.forward_backward(batch)["mi"])
    return estimates


def test_the_critic_ends_clearly_above_the_independence_floor_and_above_a_frozen_critic(
        tiny_clip, fake_caltech):
    """After 30 steps the InfoNCE estimate (its last epoch's mean) is at least 0.5 nats
    above the independence value 0 (measured: about 1.35, of at most log 8 with the
    mixed classes), and 0.1 above the same run's with the critic frozen at its
    identity start (CRITIC_LR 1e-12; measured: about 1.05): the critic learns."""
    from trainers.mutual_information import INDEPENDENCE_FLOOR

    trained = np.mean(mi_estimates(tiny_clip, fake_caltech, 0.01)[-3:])
    frozen = np.mean(mi_estimates(tiny_clip, fake_caltech, 1e-12)[-3:])
    assert trained > INDEPENDENCE_FLOOR["infonce"] + 0.5, trained
    assert trained > frozen + 0.1, (trained, frozen)


# ---------------------------------------------------------------- the configs
# Mixup is off in the defaults (docs/E2MIM.md): "no_mi" switches it on (CoOp + Mixup).
ABLATIONS = {"no_mi": {"W_MI": 0.0, "MIXUP_PROB": 1.0}, "no_mixup": {"MIXUP_PROB": 0.0},
             "no_mi_no_mixup": {"W_MI": 0.0, "MIXUP_PROB": 0.0}}


def test_every_e2mim_config_runs_the_chosen_method_and_each_ablation_switches_one_part_off():
    """Each configs/trainers/E2MIM/*.yaml trains the method of trainers/defaults.py (its own
    context and precision aside); an ablation config changes only its switches."""
    import glob
    import os.path as osp

    import train
    from tests.helpers import REPO

    def e2mim_node(config_file=None):
        argv = ["--trainer", "E2MIM"] + (["--config-file", config_file] if config_file else [])
        return dict(train.setup_cfg(train.build_parser().parse_args(argv)).TRAINER.E2MIM)

    defaults = e2mim_node()
    configs = sorted(glob.glob(osp.join(REPO, "configs", "trainers", "E2MIM", "*.yaml")))
    assert len(configs) >= 11
    for path in configs:
        name = osp.splitext(osp.basename(path))[0]
        ablation = next((ABLATIONS[suffix] for suffix in sorted(ABLATIONS, key=len, reverse=True)
                         if name.endswith("_" + suffix)), {})
        node = e2mim_node(path)
        changed = {key for key in node if node[key] != defaults[key]}
        assert changed <= {"N_CTX", "CTX_INIT", "PREC", *ablation}, (name, changed)
        assert all(node[key] == value for key, value in ablation.items()), name
