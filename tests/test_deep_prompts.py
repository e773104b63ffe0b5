"""Deep prompts (trainers/deep_prompts.py) and the IVLP, MaPLe and PromptSRC trainers,
against OpenAI's CLIP code run layer by layer, the written-out formulas, and checkpoints
in upstream's format (keys and shapes of docs/DEEP_PROMPTS.md, "Checkpoints")."""
import glob
import math
import os
import os.path as osp

import pytest
import torch

from datasets.errors import ConfigError
from tests.helpers import REPO, make_trainer
from tests.oracles import openai_clip
from trainers.prompt_trainer import TrainingImages
from trainers.promptsrc import PROMPTSRC_TEMPLATES, gpa_weights

DEPTH2 = {"IVLP": ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2"],
          "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "2"],
          "PromptSRC": ["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                        "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2"]}


def reference_clip(path):
    return openai_clip().model.build_model(torch.load(path, weights_only=True)).float().eval()


def images(n, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True)


def test_depth_one_text_prompt_is_the_written_prompt_and_no_vision_prompts_is_plain_clip(
        tiny_clip, fake_caltech):
    trainer = make_trainer("IVLP", fake_caltech, tiny_clip["tiny-ViT"],
                           "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "1", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "0")
    reference = reference_clip(tiny_clip["tiny-ViT"])
    names = [name.replace("_", " ") for name in trainer.dm.dataset.classnames]
    with torch.no_grad():
        expected_text = normalize(reference.encode_text(
            openai_clip().tokenize([f"a photo of a {name}." for name in names])))
        expected_image = normalize(reference.encode_image(images(3)))
        model = trainer.model
        torch.testing.assert_close(model.text_features(), expected_text, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.image_features(images(3)), expected_image, rtol=0, atol=1e-5)
    assert not any("VPT" in key for key in model.state_dict())


def hand_written_maple(reference, learner, tokens, image):
    """MaPLe's forward written out over OpenAI's blocks, on all 77 positions (upstream's
    path): prompts replaced at the input of layers 1..J-1, cast through fp16."""
    fp16 = lambda t: t.half().float()  # noqa: E731
    n_ctx = learner.ctx.shape[0]
    text = reference.token_embedding(tokens)
    text[:, 1:1 + n_ctx] = learner.ctx
    x = (text + reference.positional_embedding).permute(1, 0, 2)
    for layer, block in enumerate(reference.transformer.resblocks):
        if 1 <= layer <= len(learner.compound_prompts_text):
            x = x.clone()
            x[1:1 + n_ctx] = fp16(learner.compound_prompts_text[layer - 1]).unsqueeze(1)
        x = block(x)
    x = reference.ln_final(x.permute(1, 0, 2))
    text_features = x[torch.arange(x.shape[0]), tokens.argmax(-1)] @ reference.text_projection

    visual = reference.visual
    v = visual.conv1(image).flatten(2).permute(0, 2, 1)
    cls = visual.class_embedding + torch.zeros(v.shape[0], 1, v.shape[-1])
    v = torch.cat([cls, v], dim=1) + visual.positional_embedding
    first = fp16(learner.proj(learner.ctx)).expand(v.shape[0], -1, -1)
    v = visual.ln_pre(torch.cat([v, first], dim=1)).permute(1, 0, 2)
    for layer, block in enumerate(visual.transformer.resblocks):
        if 1 <= layer <= len(learner.compound_prompts_text):
            prompt = learner.compound_prompt_projections[layer - 1](learner.compound_prompts_text[layer - 1])
            v = v.clone()
            v[-n_ctx:] = fp16(prompt).unsqueeze(1)
        v = block(v)
    image_features = visual.ln_post(v.permute(1, 0, 2)[:, 0]) @ visual.proj
    return normalize(text_features), normalize(image_features)


def test_maple_layer_wise_injection_equals_a_loop_over_openai_blocks(tiny_clip, fake_caltech):
    trainer = make_trainer("MaPLe", fake_caltech, tiny_clip["tiny-ViT"], *DEPTH2["MaPLe"])
    learner = trainer.model.prompt_learner
    with torch.no_grad():  # prompts away from their initialisation, couplings that differ
        for param in learner.parameters():
            param.add_(0.05 * torch.randn_like(param))
    # Upstream's draw order: one coupling deep-copied (equal before training).
    text, image = hand_written_maple(reference_clip(tiny_clip["tiny-ViT"]), learner,
                                     openai_clip().tokenize(["a photo of a dog.", "a photo of a red car."]),
                                     images(2))
    with torch.no_grad():
        model = trainer.model
        ours_image = model.image_features(images(2))
        prompts = learner()
        tokens = learner.tokenized_prompts
    torch.testing.assert_close(ours_image, image, rtol=0, atol=1e-5)
    # The same prompts through our (truncated) text encoder and the hand-written full path.
    names = [name.replace("_", " ") for name in trainer.dm.dataset.classnames]
    text, _ = hand_written_maple(reference_clip(tiny_clip["tiny-ViT"]), learner,
                                 openai_clip().tokenize([f"a photo of a {n}." for n in names]), images(1))
    with torch.no_grad():
        ours_text = model.text_features()
    assert prompts.shape[1] == 77 and tokens.shape == (len(names), 77)
    torch.testing.assert_close(ours_text, text, rtol=0, atol=1e-5)


def test_maple_couplings_start_identical_and_widths_follow_the_backbone(tiny_clip, fake_caltech):
    trainer = make_trainer("MaPLe", fake_caltech, tiny_clip["tiny-ViT"], "TRAINER.MAPLE.PROMPT_DEPTH", "2")
    learner = trainer.model.prompt_learner
    assert learner.proj.weight.shape == (64, 64)  # (vision width, text width); ViT-B/16: 768, 512
    assert len(learner.compound_prompts_text) == 1 == len(learner.compound_prompt_projections)

    # Deeper than the tiny towers (the learner alone): upstream deep-copies ONE coupling,
    # so layers 1..J-1 start from the same values, as separate parameters.
    from clip import clip
    from trainers.maple import MultiModalPromptLearner

    clip_model, _ = clip.load(tiny_clip["tiny-ViT"], device="cpu")
    torch.manual_seed(0)
    deep = MultiModalPromptLearner(["cat", "dog"], clip_model, 2, "a photo of a", depth=4)
    first, *others = deep.compound_prompt_projections
    assert len(others) == 2
    for other in others:
        assert torch.equal(other.weight, first.weight) and torch.equal(other.bias, first.bias)
        assert other.weight is not first.weight
    assert not torch.equal(deep.proj.weight, first.weight)  # the shallow coupling is drawn apart
    assert not torch.equal(deep.compound_prompts_text[0], deep.compound_prompts_text[1])
    with torch.no_grad():
        first.weight.add_(1.0)
    assert not torch.equal(others[0].weight, first.weight)  # trained apart from then on


def test_gpa_weights_are_the_gaussian_over_epochs():
    def gaussian(mean, std, epochs):
        density = [math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
                   for e in range(1, epochs + 1)]
        return [d / sum(density) for d in density]

    for mean, std, epochs in [(15, 1, 20), (6, 10, 20), (30, 30, 50), (15, 1, 2)]:
        weights = gpa_weights(mean, std, epochs)
        assert weights == pytest.approx(gaussian(mean, std, epochs), rel=1e-12, abs=1e-300)
    two = gpa_weights(15, 1, 2)
    assert two[0] == pytest.approx(1.37e-6, rel=1e-2) and two[1] == pytest.approx(0.9999986, abs=1e-7)
    assert len(PROMPTSRC_TEMPLATES) == 60 == len(set(PROMPTSRC_TEMPLATES))
    assert PROMPTSRC_TEMPLATES[:2] == ["a photo of a {}.", "a bad photo of a {}."]


def test_promptsrc_final_model_is_the_gpa_sum_and_its_loss_the_formula(tiny_clip, fake_caltech, tmp_path):
    trainer = make_trainer("PromptSRC", fake_caltech, tiny_clip["tiny-ViT"], *DEPTH2["PromptSRC"],
                           "OPTIM.MAX_EPOCH", "2", "TRAINER.PROMPTSRC.GPA_MEAN", "2",
                           output_dir=str(tmp_path / "run"))
    states = []
    aggregate = trainer.aggregate_epoch

    def record_then_aggregate():
        states.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        aggregate()

    trainer.aggregate_epoch = record_then_aggregate
    trainer.train()
    w = gpa_weights(2, 1, 2)
    saved = torch.load(tmp_path / "run" / "VLPromptLearner" / "model.pth.tar-2",
                       weights_only=True)["state_dict"]
    for key in ("prompt_learner.ctx", "image_encoder.VPT",
                "text_encoder.transformer.resblocks.1.VPT_shallow"):
        expected = states[0][key] * w[0] + states[1][key] * w[1]
        assert torch.equal(saved[key], expected) and torch.equal(trainer.model.state_dict()[key], expected)
        assert not torch.equal(saved[key], states[1][key])

    # The loss: CE + KL/(batch x classes) + 25 L1(text) + 10 L1(image), written out.
    model, image, label = trainer.model, images(3), torch.tensor([0, 1, 2])
    with torch.no_grad():
        loss = trainer.compute_loss(TrainingImages(pixels=image), label)["loss"]
        text, feats = model.text_features(), model.image_features(image)
        logits = model.logit_scale.exp() * feats @ text.t()
        teacher_text = normalize(model.fixed_embeddings)
        zs = normalize(model.prompt_learner.ZS_image_encoder(image))
        zs_logits = model.logit_scale.exp() * zs @ teacher_text.half().float().t()
        p_teacher = zs_logits.softmax(1)
        kl = (p_teacher * (p_teacher.log() - logits.log_softmax(1))).sum() / logits.numel()
        expected = (torch.nn.functional.cross_entropy(logits, label) + kl
                    + 25 * (text - teacher_text).abs().mean() + 10 * (feats - zs).abs().mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def whole_model_keys(clip_file, prompt_keys, zero_shot=False):
    """The state-dict keys of upstream's CustomCLIP, from OpenAI's keys: the towers as
    image_encoder / text_encoder (no token embedding), logit_scale, the prompt keys."""
    keys = set(prompt_keys)
    for key in torch.load(clip_file, weights_only=True):
        if key.startswith("visual."):
            keys.add("image_encoder." + key[len("visual."):])
            if zero_shot:
                keys.add("prompt_learner.ZS_image_encoder." + key[len("visual."):])
        elif key == "logit_scale":
            keys.add(key)
        elif key != "token_embedding.weight":
            keys.add("text_encoder." + key)
    return keys


UPSTREAM = {  # trainable keys and shapes with a 2-layer model at depth 2 (tiny widths: 64)
    "MaPLe": ("MultiModalPromptLearner", {
        "prompt_learner.ctx": (2, 64), "prompt_learner.proj.weight": (64, 64),
        "prompt_learner.proj.bias": (64,), "prompt_learner.compound_prompts_text.0": (2, 64),
        "prompt_learner.compound_prompt_projections.0.weight": (64, 64),
        "prompt_learner.compound_prompt_projections.0.bias": (64,)}, 69),
    "IVLP": ("VLPromptLearner", {
        "prompt_learner.ctx": (4, 64), "image_encoder.VPT": (4, 64),
        "image_encoder.transformer.resblocks.1.VPT_shallow": (4, 64),
        "text_encoder.transformer.resblocks.1.VPT_shallow": (4, 64)}, 67),
}
UPSTREAM["PromptSRC"] = ("VLPromptLearner", UPSTREAM["IVLP"][1], 99)


@pytest.mark.parametrize("name", ["IVLP", "MaPLe", "PromptSRC"])
def test_upstream_checkpoint_loads_and_ours_has_upstream_keys(tiny_clip, fake_caltech, tmp_path, name):
    folder, trainable, count = UPSTREAM[name]
    clip_file = tiny_clip["tiny-ViT"]
    trainer = make_trainer(name, fake_caltech, clip_file, *DEPTH2[name], output_dir=str(tmp_path / "a"))
    n_ctx = trainable["prompt_learner.ctx"][0]
    keys = whole_model_keys(clip_file, set(trainable) | {"prompt_learner.token_prefix",
                                                         "prompt_learner.token_suffix"},
                            zero_shot=name == "PromptSRC")
    assert len(keys) == count
    # Upstream's file: the whole model, its own class names' token buffers (7 classes).
    own = trainer.model.state_dict()
    theirs = {key: torch.randn(trainable[key]) if key in trainable else own[key].clone() for key in keys}
    theirs["prompt_learner.token_prefix"] = torch.zeros(7, 1, 64)
    theirs["prompt_learner.token_suffix"] = torch.zeros(7, 77 - 1 - n_ctx, 64)
    path = tmp_path / "up" / folder / "model.pth.tar-5"
    os.makedirs(path.parent)
    torch.save({"state_dict": theirs, "epoch": 5, "optimizer": {}, "scheduler": {}, "val_result": None}, path)
    trainer.load_model(str(tmp_path / "up"), epoch=5)
    loaded = trainer.model.state_dict()
    for key in trainable:
        assert torch.equal(loaded[key], theirs[key]), key
    assert loaded["prompt_learner.token_prefix"].shape[0] == 4  # rebuilt for this run's classes

    trainer.save_model(0, str(tmp_path / "ours"))
    saved = torch.load(tmp_path / "ours" / folder / "model.pth.tar-1", weights_only=True)
    assert set(saved["state_dict"]) == keys
    assert {"state_dict", "epoch", "optimizer", "scheduler", "val_result"} <= set(saved)
    for key, shape in trainable.items():
        assert tuple(saved["state_dict"][key].shape) == shape, key
    assert saved["state_dict"]["prompt_learner.token_suffix"].shape == (4, 77 - 1 - n_ctx, 64)


@pytest.mark.parametrize("name, opts, message", [
    ("MaPLe", ["TRAINER.MAPLE.PROMPT_DEPTH", "3"],
     "TRAINER.MAPLE.PROMPT_DEPTH is 3, but the vision tower of backbone"),
    ("IVLP", ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "1", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "4"],
     "set TRAINER.IVLP.PROMPT_DEPTH_TEXT to at most 2"),
    ("IVLP", ["TRAINER.IVLP.PROMPT_DEPTH_TEXT", "0"], "TRAINER.IVLP.PROMPT_DEPTH_TEXT must be at least 1"),
    ("PromptSRC", ["TRAIN.FEATURE_CACHE.ENABLED", "True"], "deep vision prompts change them"),
])
def test_bad_deep_prompt_settings_say_what_to_set(tiny_clip, fake_caltech, name, opts, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], *opts)


def test_resnet_backbone_is_refused_clearly(tiny_clip, fake_caltech):
    with pytest.raises(ConfigError, match="deep prompts need a ViT backbone"):
        make_trainer("MaPLe", fake_caltech, tiny_clip["tiny-RN"], shape="tiny-RN")


def test_published_configs_merge(fake_caltech, tiny_clip):
    import train

    files = sorted(glob.glob(osp.join(REPO, "configs/trainers/*/*.yaml")))
    files = [f for f in files if f.split(os.sep)[-2] in ("IVLP", "MaPLe", "PromptSRC")]
    assert len(files) >= 11
    for path in files:
        trainer = path.split(os.sep)[-2]
        args = train.build_parser().parse_args(
            ["--root", fake_caltech, "--trainer", trainer, "--config-file", path,
             "--dataset-config-file", "configs/datasets/caltech101.yaml"])
        cfg = train.setup_cfg(args)
        node = {"MaPLe": "MAPLE", "IVLP": "IVLP", "PromptSRC": "PROMPTSRC"}[trainer]
        assert cfg.TRAINER[node].CTX_INIT == "a photo of a", path
