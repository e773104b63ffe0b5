"""trainers/e2mim.py: reductions to CoOp, Mixup wiring, the critic as a registered model,
inference rules, cached hand-crafted view, configuration errors."""
import pytest
import torch
from torch.nn import functional as F

from runs.errors import ConfigError
from tests.conftest import make_trainer


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
    coop_loss, _ = coop.compute_loss(image, label)
    our_loss, _, mi, _ = ours.compute_losses(image, label)
    assert mi is None
    torch.testing.assert_close(our_loss, coop_loss, rtol=0, atol=1e-6)
    torch.testing.assert_close(prompt_gradient(ours, our_loss), prompt_gradient(coop, coop_loss),
                               rtol=0, atol=1e-6)


def test_full_loss_is_ce_plus_mixup_minus_mi(tiny_clip, fake_caltech):
    trainer = e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.W_MIX", "0.3",
                    "TRAINER.E2MIM.W_MI", "2.0")
    image, label = trainer.parse_batch_train(first_batch(trainer))
    trainer.epoch, trainer.batch_idx = 0, 0
    loss, logits, mi, summary = trainer.compute_losses(image, label)
    expected = F.cross_entropy(logits, label) + 0.3 * summary["loss_mix"] - 2.0 * summary["mi"]
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert mi.item() == pytest.approx(summary["mi"])


@pytest.mark.parametrize("level, passes", [("feature", 1), ("image", 2)])
def test_mixup_level_and_image_encoder_passes(tiny_clip, fake_caltech, level, passes):
    trainer = e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.MIXUP_LEVEL", level)
    calls = []
    trainer.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    image, label = trainer.parse_batch_train(first_batch(trainer))
    trainer.epoch, trainer.batch_idx = 0, 0
    _, _, _, summary = trainer.compute_losses(image, label)
    assert len(calls) == passes and "loss_mix" in summary


def test_one_epoch_updates_prompt_and_critic_and_encodes_hand_crafted_view_once(
        tiny_clip, fake_caltech):
    trainer = e2mim(tiny_clip, fake_caltech, "DATALOADER.TRAIN_X.BATCH_SIZE", "4")
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
    trainer = e2mim(tiny_clip, fake_caltech, "TRAINER.E2MIM.INFERENCE", rule,
                    "TRAINER.E2MIM.ENSEMBLE_WEIGHT", "0.3")
    model = trainer.model
    image = next(iter(trainer.test_loader))["img"]
    with torch.no_grad():
        v = model.image_features(image)
        soft = model.logit_scale.exp() * v @ model.text_features().t()
        hand = model.logit_scale.exp() * v @ model.hand_crafted_text_features.t()
        expected = soft if rule == "soft" else 0.7 * soft + 0.3 * hand
        torch.testing.assert_close(model(image), expected, rtol=0, atol=1e-5)


def test_evaluation_on_another_class_list_neither_needs_nor_loads_the_critic(
        tiny_clip, fake_caltech, tmp_path):
    trained = e2mim(tiny_clip, fake_caltech, output_dir=str(tmp_path / "run"))
    trained.save_model(0, str(tmp_path / "run"))
    assert (tmp_path / "run" / "critic" / "model.pth.tar-1").is_file()
    new_classes = e2mim(tiny_clip, fake_caltech, "DATASET.SUBSAMPLE_CLASSES", "new")
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
        e2mim(tiny_clip, fake_caltech, key, value)


def test_batch_of_one_is_fine_without_mi(tiny_clip, fake_caltech):
    trainer = e2mim(tiny_clip, fake_caltech, "DATALOADER.TRAIN_X.BATCH_SIZE", "1",
                    "TRAINER.E2MIM.W_MI", "0.0")
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 1
    summary = trainer.forward_backward(first_batch(trainer))
    assert "loss_mix" not in summary  # one sample, one class: nothing to mix
