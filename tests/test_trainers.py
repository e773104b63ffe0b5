"""trainers/: the shared prompting blocks and the baselines, against independent computations.

The independent side is OpenAI's CLIP code (the oracle wheel) run on the same weights,
or the formula written out with plain tensor operations.
"""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from clip import clip
from datasets.errors import ConfigError
from tests.helpers import make_trainer
from tests.oracles import openai_clip
from trainers.clip_prompting import PromptedCLIP, PromptLearner, load_clip_to_cpu
from trainers.cocoop import ConditionalPromptedCLIP, ConditionalPromptLearner
from trainers.prompt_trainer import CheckpointError
from trainers.templates import (
    CUSTOM_TEMPLATES,
    IMAGENET_TEMPLATES,
    IMAGENET_TEMPLATES_SELECT,
    KGCOOP_TEMPLATES,
    template_for,
)
from trainers.zsclip import ZeroshotCLIP2


def tiny_models(path):
    """Our CLIP and OpenAI's, in fp32, from the same checkpoint file."""
    state_dict = torch.load(path, weights_only=True)
    ours = clip.build_model({k: v.clone() for k, v in state_dict.items()}).float()
    reference = openai_clip().model.build_model({k: v.clone() for k, v in state_dict.items()})
    return ours, reference.float().eval()


def reference_text_features(reference, texts):
    with torch.no_grad():
        features = reference.encode_text(openai_clip().tokenize(texts))
    return features / features.norm(dim=-1, keepdim=True)


def images(n, size, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- templates
def test_template_tables():
    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)
    assert IMAGENET_TEMPLATES_SELECT[0] == "itap of a {}." and len(IMAGENET_TEMPLATES_SELECT) == 7
    assert set(IMAGENET_TEMPLATES_SELECT) <= set(IMAGENET_TEMPLATES)
    assert len(CUSTOM_TEMPLATES) == 16  # the 15 of CoOp and SynthWorld
    differing = {k for k in CUSTOM_TEMPLATES if KGCOOP_TEMPLATES[k] != CUSTOM_TEMPLATES[k]}
    assert differing == {"DescribableTextures"}
    with pytest.raises(ConfigError, match="Caltech101"):
        template_for(SimpleNamespace(NAME="Caltech102"))


def test_zeroshot_ensemble_templates_as_upstream():
    def names(dataset):
        fake = SimpleNamespace(cfg=SimpleNamespace(DATASET=SimpleNamespace(NAME=dataset)))
        return ZeroshotCLIP2.templates(fake)

    assert names("ImageNet") == IMAGENET_TEMPLATES_SELECT
    assert names("EuroSAT") == IMAGENET_TEMPLATES_SELECT + ["a centered satellite photo of {}."]
    assert names("EuroSAT") == names("EuroSAT")  # no class-level list that keeps growing


# ---------------------------------------------------------------- prompt learner
@pytest.mark.parametrize("position, words", [
    ("end", "a photo of a {}."), ("front", "{} a photo of a."), ("middle", "a photo {} of a.")])
def test_prompt_learner_with_word_context_equals_openai_encode_text(tiny_clip, position, words):
    ours, reference = tiny_models(tiny_clip["tiny-ViT"])
    classnames = ["dog", "cat", "red_car"]
    learner = PromptLearner(classnames, ours, n_ctx=16, ctx_init="a_photo_of_a",
                            class_token_position=position)
    assert learner.n_ctx == 4 and learner.name_lens == [1, 1, 2]
    text_features = PromptedCLIP(ours, learner).text_features()
    expected = reference_text_features(
        reference, [words.format(name.replace("_", " ")) for name in classnames])
    torch.testing.assert_close(text_features, expected, rtol=0, atol=2e-6)


def test_coop_logits_equal_direct_computation(tiny_clip):
    ours, reference = tiny_models(tiny_clip["tiny-ViT"])
    torch.manual_seed(3)
    learner = PromptLearner(["dog", "sea_lion"], ours, n_ctx=5)
    model = PromptedCLIP(ours, learner)
    image = images(4, 32)

    # Direct: replace the embeddings of the five "X" placeholders by ctx and run
    # OpenAI's text transformer by hand; image features from OpenAI's encoder.
    tokens = openai_clip().tokenize(["X X X X X dog.", "X X X X X sea lion."])
    with torch.no_grad():
        x = reference.token_embedding(tokens)
        x[:, 1:6] = learner.ctx.detach()
        x = x + reference.positional_embedding
        x = reference.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = reference.ln_final(x)
        text = x[torch.arange(2), tokens.argmax(-1)] @ reference.text_projection
        text = text / text.norm(dim=-1, keepdim=True)
        img = reference.encode_image(image)
        img = img / img.norm(dim=-1, keepdim=True)
        expected = reference.logit_scale.exp() * img @ text.t()
        logits = model(image)
    torch.testing.assert_close(logits, expected, rtol=0, atol=5e-5)
    assert logits.shape == (4, 2)


def test_class_specific_contexts(tiny_clip):
    ours, _ = tiny_models(tiny_clip["tiny-ViT"])
    learner = PromptLearner(["dog", "cat", "cow"], ours, n_ctx=3, csc=True)
    assert learner.ctx.shape == (3, 3, 64)
    prompts = learner()
    for c in range(3):
        assert torch.equal(prompts[c, 1:4], learner.ctx[c])
    assert torch.equal(prompts[:, :1], learner.token_prefix)
    assert torch.equal(prompts[:, 4:], learner.token_suffix)


# ---------------------------------------------------------------- CoCoOp
def test_cocoop_meta_net_shifts_the_context_per_image(tiny_clip):
    ours, _ = tiny_models(tiny_clip["tiny-ViT"])
    torch.manual_seed(0)
    learner = ConditionalPromptLearner(["dog", "cat", "cow"], ours, n_ctx=4, ctx_init="",
                                       half_precision=False)
    model = ConditionalPromptedCLIP(ours, learner)
    image = images(2, 32)
    with torch.no_grad():
        features = model.image_features(image)
        prompts = learner(features)
        shift = learner.meta_net(features)
    assert prompts.shape == (2, 3, 77, 64)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(prompts[b, c, 1:5], learner.ctx + shift[b], rtol=0, atol=0)
    assert not torch.allclose(prompts[0, :, 1:5], prompts[1, :, 1:5])

    # Each image's logits are CoOp's logits with that image's shifted context.
    with torch.no_grad():
        logits = model(image)
        for b in range(2):
            coop = PromptLearner(["dog", "cat", "cow"], ours, n_ctx=4)
            coop.ctx.copy_(learner.ctx + shift[b])
            expected = PromptedCLIP(ours, coop)(image[b:b + 1])[0]
            torch.testing.assert_close(logits[b], expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- KgCoOp
def test_kgcoop_loss_is_ce_plus_w_times_one_minus_mean_cosine(tiny_clip, fake_caltech):
    trainer = make_trainer("KgCoOp", fake_caltech, tiny_clip["tiny-ViT"],
                           "TRAINER.KGCOOP.W", "3.5", "TRAINER.KGCOOP.PREC", "fp32")
    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)
    with torch.no_grad():
        trainer.model.prompt_learner.ctx.add_(0.05 * torch.randn_like(trainer.model.prompt_learner.ctx))
        terms = trainer.compute_loss(image, label)
        loss, logits = terms["loss"], terms["logits"]

        learned = trainer.model.text_features()
        hand_crafted = openai_fp16_teacher(tiny_clip["tiny-ViT"], trainer.dm.dataset.classnames)
        cosine = (learned * hand_crafted).sum(-1) / (learned.norm(dim=-1) * hand_crafted.norm(dim=-1))
        expected = F.cross_entropy(logits, label) + 3.5 * (1 - cosine.mean())
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-5)
    assert trainer.model.hand_crafted_text_features.shape == learned.shape


def openai_fp16_teacher(path, classnames):
    """Upstream KgCoOp's teacher with OpenAI's code: the released fp16 weights, all 77
    positions, normalised twice (at creation and in the step)."""
    reference = openai_clip().model.build_model(torch.load(path, weights_only=True)).eval()
    with torch.no_grad():
        features = reference.encode_text(openai_clip().tokenize(
            [f"a photo of a {name.replace('_', ' ')}." for name in classnames]))
        features = features / features.norm(dim=-1, keepdim=True)
        return features / features.norm(dim=-1, keepdim=True)


def test_kgcoop_teacher_is_a_dropped_fp16_clip_over_the_full_context(tiny_clip, fake_caltech,
                                                                      monkeypatch):
    import gc
    import weakref

    import trainers.kgcoop

    teachers = []

    def load_and_watch(cfg):
        model = load_clip_to_cpu(cfg)
        teachers.append(weakref.ref(model))
        return model

    monkeypatch.setattr(trainers.kgcoop, "load_clip_to_cpu", load_and_watch)
    trainer = make_trainer("KgCoOp", fake_caltech, tiny_clip["tiny-ViT"],
                           "TRAINER.KGCOOP.PREC", "fp32")
    assert trainer.model.dtype == torch.float32
    teacher = trainer.model.hand_crafted_text_features
    assert teacher.dtype == torch.float16  # under PREC fp32 too, as upstream
    expected = openai_fp16_teacher(tiny_clip["tiny-ViT"], trainer.dm.dataset.classnames)
    assert torch.equal(teacher, expected)
    gc.collect()
    assert len(teachers) == 1 and teachers[0]() is None  # used once, then dropped

    # What the quirk changes: the run's fp32 CLIP gives other features.
    _, reference = tiny_models(tiny_clip["tiny-ViT"])
    fp32 = reference_text_features(
        reference, [f"a photo of a {n.replace('_', ' ')}." for n in trainer.dm.dataset.classnames])
    assert (teacher.float() - fp32).abs().max() > 1e-4


# ---------------------------------------------------------------- trainers
def test_evaluation_encodes_the_class_prompts_once(tiny_clip, fake_caltech):
    trainer = make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"],
                           "DATALOADER.TEST.BATCH_SIZE", "2")
    calls = []
    trainer.model.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    assert len(trainer.test_loader) > 2
    accuracy = trainer.test()
    assert len(calls) == 1

    # The same numbers as encoding the prompts for every batch (upstream's way).
    cached, per_batch, labels = [], [], []
    with torch.no_grad():
        with trainer.model.frozen_text_features():
            for batch in trainer.test_loader:
                cached.append(trainer.model(batch["img"]))
        for batch in trainer.test_loader:
            per_batch.append(trainer.model(batch["img"]))
            labels.append(batch["label"])
    assert torch.equal(torch.cat(cached), torch.cat(per_batch))
    manual = (torch.cat(per_batch).argmax(1) == torch.cat(labels)).float().mean().item() * 100
    assert accuracy == pytest.approx(manual)


@pytest.mark.parametrize("name", ["CoOp", "CoCoOp", "KgCoOp"])
def test_clip_stays_frozen_in_eval_mode(tiny_clip, fake_caltech, name):
    trainer = make_trainer(name, fake_caltech, tiny_clip["tiny-RN"], "OPTIM.LR", "0.5",
                           "DATALOADER.TRAIN_X.BATCH_SIZE", "4", shape="tiny-RN")
    clip_state = {k: v.clone() for k, v in trainer.model.state_dict().items()
                  if not k.startswith("prompt_learner.")}
    assert any("running_mean" in k for k in clip_state)
    learned = {k: v.clone() for k, v in trainer.model.prompt_learner.state_dict().items()}

    trainer.set_model_mode("train")
    trainer.num_batches = len(trainer.train_loader_x)
    for trainer.batch_idx, batch in enumerate(trainer.train_loader_x):
        trainer.forward_backward(batch)

    assert trainer.model.prompt_learner.training
    assert not trainer.model.image_encoder.training
    assert not trainer.model.text_encoder.transformer.training
    for key, value in trainer.model.state_dict().items():
        if key in clip_state:
            assert torch.equal(value, clip_state[key]), f"{key} moved"
    assert not torch.equal(trainer.model.prompt_learner.ctx, learned["ctx"])
    trainable = sorted(k for k, p in trainer.model.named_parameters() if p.requires_grad)
    assert all(k.startswith("prompt_learner.") for k in trainable)


# ---------------------------------------------------------------- checkpoints
def upstream_checkpoint(folder, state_dict, epoch):
    """A checkpoint as upstream Dassl writes it (plain torch.save of this dict)."""
    path = osp.join(folder, "prompt_learner", f"model.pth.tar-{epoch}")
    import os

    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save({"state_dict": state_dict, "epoch": epoch, "optimizer": {}, "scheduler": {}}, path)
    return path


@pytest.mark.parametrize("name", ["CoOp", "CoCoOp", "ProGrad"])
def test_upstream_checkpoint_loads_and_ours_has_upstream_keys(tiny_clip, fake_caltech, tmp_path,
                                                              name):
    trainer = make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], output_dir=str(tmp_path / "a"))
    learner = trainer.model.prompt_learner
    theirs = {k: torch.randn_like(v) for k, v in learner.state_dict().items()}
    # Upstream saves the fixed token buffers of *its* class names; they must be ignored.
    theirs["token_prefix"] = torch.zeros(7, 1, 64)
    theirs["token_suffix"] = torch.zeros(7, 72, 64)
    upstream_checkpoint(str(tmp_path / "up"), theirs, 10)
    own_prefix = learner.token_prefix.clone()
    trainer.load_model(str(tmp_path / "up"), epoch=10)
    for key, value in learner.state_dict().items():
        if key.startswith("token_"):
            continue
        assert torch.equal(value, theirs[key]), key
    assert torch.equal(learner.token_prefix, own_prefix)

    # Ours: a plain torch.load (weights_only, as upstream on current torch) reads
    # it, and it holds exactly the tensors upstream's prompt learner has.
    trainer.save_model(2, str(tmp_path / "ours"))  # after epoch index 2: the file of epoch 3
    saved = torch.load(str(tmp_path / "ours" / "prompt_learner" / "model.pth.tar-3"),
                       weights_only=True)
    expected_keys = {"ctx", "token_prefix", "token_suffix"}
    if name == "CoCoOp":
        expected_keys |= {f"meta_net.linear{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    assert set(saved["state_dict"]) == expected_keys
    assert saved["epoch"] == 3 and {"optimizer", "scheduler"} <= set(saved)
    n_ctx = learner.n_ctx
    assert saved["state_dict"]["token_suffix"].shape == (4, 77 - 1 - n_ctx, 64)


def test_checkpoint_that_does_not_fit_says_why(tiny_clip, fake_caltech, tmp_path):
    trainer = make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], "TRAINER.COOP.N_CTX", "4")
    upstream_checkpoint(str(tmp_path / "len"), {"ctx": torch.zeros(16, 64)}, 1)
    with pytest.raises(CheckpointError, match="context length: it has 16 context vectors, this "
                                              "config builds 4"):
        trainer.load_model(str(tmp_path / "len"), epoch=1)
    upstream_checkpoint(str(tmp_path / "width"), {"ctx": torch.zeros(4, 512)}, 1)
    with pytest.raises(CheckpointError, match="another backbone"):
        trainer.load_model(str(tmp_path / "width"), epoch=1)
    upstream_checkpoint(str(tmp_path / "other"), {"bias_vectors": torch.zeros(1, 512)}, 1)
    with pytest.raises(CheckpointError, match=r"lacks \['ctx'\]"):
        trainer.load_model(str(tmp_path / "other"), epoch=1)

    csc = make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], "TRAINER.COOP.N_CTX", "4",
                       "TRAINER.COOP.CSC", "True")
    upstream_checkpoint(str(tmp_path / "classes"), {"ctx": torch.zeros(100, 4, 64)}, 1)
    with pytest.raises(CheckpointError, match="class count: it has class-specific contexts for "
                                              "100 classes, this dataset has 4"):
        csc.load_model(str(tmp_path / "classes"), epoch=1)
    upstream_checkpoint(str(tmp_path / "generic"), {"ctx": torch.zeros(4, 64)}, 1)
    with pytest.raises(CheckpointError, match="CSC"):
        csc.load_model(str(tmp_path / "generic"), epoch=1)


# ---------------------------------------------------------------- configuration
def test_bad_backbone_precision_and_input_size(tiny_clip, fake_caltech):
    cfg = SimpleNamespace(MODEL=SimpleNamespace(BACKBONE=SimpleNamespace(NAME="ViT-B/61")))
    with pytest.raises(ConfigError, match="ViT-B/61.*valid names: RN50, RN101.*ViT-B/16"):
        load_clip_to_cpu(cfg)
    with pytest.raises(ConfigError, match="TRAINER.COOP.PREC must be one of fp16, fp32, amp"):
        make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], "TRAINER.COOP.PREC", "bf16")
    with pytest.raises(ConfigError, match=r"takes 32x32 images; set INPUT.SIZE \(32, 32\)"):
        make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"], "INPUT.SIZE", "(224, 224)")


def test_fp16_falls_back_to_fp32_on_cpu_with_a_note(tiny_clip, fake_caltech, capsys):
    trainer = make_trainer("CoCoOp", fake_caltech, tiny_clip["tiny-ViT"])
    assert trainer.precision == "fp32"
    assert trainer.model.dtype == torch.float32
    assert trainer.model.prompt_learner.meta_net.linear1.weight.dtype == torch.float32
    assert "TRAINER.COCOOP.PREC = fp16 needs a CUDA device; running in fp32" in capsys.readouterr().out


def test_zeroshot_clip_text_features_equal_openai(tiny_clip, fake_caltech):
    _, reference = tiny_models(tiny_clip["tiny-ViT"])
    trainer = make_trainer("ZeroshotCLIP", fake_caltech, tiny_clip["tiny-ViT"])
    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    expected = reference_text_features(reference, [f"a photo of a {n}." for n in names])
    torch.testing.assert_close(trainer.text_features, expected, rtol=0, atol=2e-6)

    ensemble = make_trainer("ZeroshotCLIP2", fake_caltech, tiny_clip["tiny-ViT"])
    templates = IMAGENET_TEMPLATES_SELECT + ["a photo of a {}."]
    mean = sum(reference_text_features(reference, [t.format(n) for n in names])
               for t in templates) / 8
    torch.testing.assert_close(ensemble.text_features, mean / mean.norm(dim=-1, keepdim=True),
                               rtol=0, atol=2e-6)
