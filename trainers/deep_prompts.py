"""Deep prompts: learned tokens at the input of the first J layers of CLIP's transformers
(VPT, IVLP, MaPLe, PromptSRC; docs/DEEP_PROMPTS.md).

* Text: the context tokens (positions 1..n_ctx, right after SOS) are replaced by a
  layer's prompt at the input of layers 1..J-1; layer 0's are the prompt learner's ``ctx``.
* Vision: n_ctx tokens are appended after the patch tokens (before ``ln_pre``) and
  replaced by a layer's prompt at the input of layers 1..J-1.
* Layers from J on pass the previous layer's outputs at those positions through.

A per-layer list holds one prompt ``(n_ctx, width)`` or None per transformer block.
OpenAI's modules and state-dict keys are unchanged: IVLP's and PromptSRC's prompts are
attached to the blocks as ``VPT_shallow`` (and to the vision tower as ``VPT``), the
names of upstream's modified CLIP, so their checkpoints keep upstream's keys.

Also here, what IVLP, MaPLe and PromptSRC share: the frozen CLIP with deep prompts
(``DeepPromptedCLIP``), upstream's text prompt learner (``upstream_prompt_learner``),
upstream's registration of the whole model (``UpstreamRegisteredTrainer``) and the
settings every deep-prompt method refuses (``check_deep_cfg``). The text blocks' loop
(``run_blocks``) belongs to the text encoder, in clip_prompting.py.
"""
import torch
from torch import nn

from datasets.errors import ConfigError

from .clip_prompting import PromptedCLIP, PromptLearner, normalize, run_blocks
from .prompt_trainer import PromptTuningTrainer


def as_upstream_fp16(prompt, dtype):
    """Upstream's modified CLIP casts every deep and visual prompt with ``.half()`` before
    inserting it, in every precision: under fp32 the forward sees fp16-rounded values and
    the gradient reaching the fp32 parameter is fp16-rounded too. Kept, because the
    rounding decides the last bits of every result."""
    return prompt.half().to(dtype)


def replace_visual_prompts(x, prompt):
    """``x`` (L, N, width): the last n_ctx tokens (the appended prompts) become ``prompt``."""
    context = prompt.unsqueeze(1).expand(-1, x.shape[1], -1)
    return torch.cat([x[:x.shape[0] - prompt.shape[0]], context], dim=0)


def encode_image(visual, image, first_prompt, layer_prompts=()):
    """CLIP's ViT image features with ``first_prompt`` (n_ctx, width) appended to the
    patch tokens and ``layer_prompts`` replacing them in later layers."""
    x = visual.embed(image)
    x = torch.cat([x, first_prompt.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = visual.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
    x = run_blocks(visual.transformer, x, layer_prompts, replace_visual_prompts)
    return visual.pool(x.permute(1, 0, 2))


def new_prompt(n_ctx, width):
    """A learned prompt (n_ctx, width) drawn from N(0, 0.02), fp32 in every precision (as upstream)."""
    prompt = torch.empty(n_ctx, width)
    nn.init.normal_(prompt, std=0.02)
    return nn.Parameter(prompt)


def add_layer_prompts(transformer, n_ctx, depth):
    """Upstream's ``VPT_shallow`` prompts on blocks 1..depth-1 of ``transformer``."""
    for block in transformer.resblocks[1:depth]:
        block.VPT_shallow = new_prompt(n_ctx, transformer.width)


def attached_layer_prompts(blocks, dtype):
    """The per-layer list of the ``VPT_shallow`` prompts of a transformer's ``blocks``, as inserted."""
    return [as_upstream_fp16(block.VPT_shallow, dtype) if hasattr(block, "VPT_shallow") else None
            for block in blocks]


def check_deep_prompting(clip_model, backbone, vision_depths=(), text_depths=()):
    """Deep prompts need a ViT, and at most as many prompted layers as a tower has.
    ``*_depths``: (config key, depth) pairs of each tower."""
    if not hasattr(clip_model.visual, "transformer"):
        raise ConfigError(
            f"deep prompts need a ViT backbone; MODEL.BACKBONE.NAME {backbone} is a ResNet "
            "(use ViT-B/16 as the published configs, or another ViT)")
    for tower, layers, depths in (("vision", clip_model.visual.transformer.layers, vision_depths),
                                  ("text", clip_model.transformer.layers, text_depths)):
        for key, depth in depths:
            if depth > layers:
                raise ConfigError(f"{key} is {depth}, but the {tower} tower of backbone {backbone} "
                                  f"has {layers} layers: set {key} to at most {layers}")


def upstream_prompt_learner(classnames, clip_model, n_ctx, ctx_init, learner=PromptLearner,
                            **options):
    """The text prompt learner of MaPLe, IVLP and PromptSRC: CoOp's, except that CTX_INIT
    is used only when N_CTX <= 4, and then its first N_CTX tokens are learned (the rest
    stay words of the prompt: N_CTX 2 learns "a photo" of "a photo of a {class}.").
    ``learner``: a subclass of PromptLearner taking ``options`` too (MaPLe's)."""
    return learner(classnames, clip_model, n_ctx, ctx_init if n_ctx <= 4 else "",
                   n_ctx_from_words=False, **options)


def check_deep_cfg(cfg, node, depth_keys):
    """Settings every deep-prompt method refuses before any work."""
    for key in depth_keys:
        if cfg.TRAINER[node][key] < 0:
            raise ConfigError(f"TRAINER.{node}.{key} must be 0 or more; got {cfg.TRAINER[node][key]}")


class UpstreamRegisteredTrainer(PromptTuningTrainer):
    """A deep-prompt method registered as upstream registers it: ``trained_modules`` is the
    whole model under upstream's folder name, of which only the prompts learn."""

    def is_trained(self, name):
        """Upstream's rule: the prompt learner's parameters and the attached ``VPT`` prompts."""
        return name.startswith("prompt_learner.") or "VPT" in name


class DeepPromptedCLIP(PromptedCLIP):
    """Frozen CLIP with deep prompts (the functions above): a method states which
    prompts go where in ``text_layer_prompts`` and ``vision_prompts``."""

    def text_layer_prompts(self):
        """One deep text prompt (n_ctx, width) or None per text layer."""
        return ()

    def vision_prompts(self):
        """``(first prompt, per-layer prompts)``, or None for CLIP's own image features."""
        return None

    def image_features(self, image):
        prompts = self.vision_prompts()
        if prompts is None:
            return super().image_features(image)
        return normalize(encode_image(self.image_encoder, image.type(self.dtype), *prompts))

    def text_features(self):
        prompts = self.prompt_learner()
        return normalize(self.text_encoder(prompts, self.prompt_learner.tokenized_prompts,
                                           self.text_layer_prompts()))
