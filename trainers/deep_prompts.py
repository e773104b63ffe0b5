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
"""
import torch
from torch import nn

from datasets.errors import ConfigError


def as_upstream_fp16(prompt, dtype):
    """Upstream's modified CLIP casts every deep and visual prompt with ``.half()`` before
    inserting it, in every precision: under fp32 the forward sees fp16-rounded values and
    the gradient reaching the fp32 parameter is fp16-rounded too. Kept, because the
    rounding decides the last bits of every result."""
    return prompt.half().to(dtype)


def replace_text_context(x, prompt):
    """``x`` (L, N, width): tokens 1..n_ctx (after SOS) become ``prompt`` (n_ctx, width)."""
    n_ctx = prompt.shape[0]
    context = prompt.unsqueeze(1).expand(-1, x.shape[1], -1)
    return torch.cat([x[:1], context, x[1 + n_ctx:]], dim=0)


def replace_visual_prompts(x, prompt):
    """``x`` (L, N, width): the last n_ctx tokens (the appended prompts) become ``prompt``."""
    context = prompt.unsqueeze(1).expand(-1, x.shape[1], -1)
    return torch.cat([x[:x.shape[0] - prompt.shape[0]], context], dim=0)


def run_blocks(transformer, x, layer_prompts, replace):
    """OpenAI's blocks one by one, ``replace(x, prompt)`` at the input of each layer
    that has a prompt (``layer_prompts[i]``, None or missing: none)."""
    for index, block in enumerate(transformer.resblocks):
        prompt = layer_prompts[index] if index < len(layer_prompts) else None
        if prompt is not None:
            x = replace(x, prompt)
        x = block(x)
    return x


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
