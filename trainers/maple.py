"""MaPLe: Multi-modal Prompt Learning (Khattak et al., CVPR 2023, arXiv 2210.03117).

Text prompts at the input of the first PROMPT_DEPTH text layers; the vision prompts of
each of those layers are projected from the text prompts by a coupling function (a
linear layer per layer), so the two towers are prompted jointly. Cross-entropy.
docs/DEEP_PROMPTS.md.

Upstream hard-codes ViT-B/16's widths (couplings ``Linear(ctx_dim, 768)``, deep text
prompts of width 512); here they are the backbone's vision and text widths, the same
numbers for ViT-B/16, so that other ViTs (and tiny test models) work.
"""
import copy

import torch
from torch import nn

from dassl.engine import TRAINER_REGISTRY
from datasets.errors import ConfigError

from .clip_prompting import PromptLearner
from .deep_prompts import (
    DeepPromptedCLIP,
    UpstreamRegisteredTrainer,
    as_upstream_fp16,
    check_deep_cfg,
    check_deep_prompting,
    upstream_prompt_learner,
)


class MultiModalPromptLearner(PromptLearner):
    """CoOp's text prompt learner (``ctx``, upstream's deep-prompt context rule:
    ``upstream_prompt_learner``) with the coupling ``proj`` of ``ctx`` to layer 0's vision
    prompt, and for layers 1..J-1 the text prompts ``compound_prompts_text`` and their
    couplings ``compound_prompt_projections`` (upstream's names)."""

    def __init__(self, classnames, clip_model, n_ctx, ctx_init="", n_ctx_from_words=False,
                 depth=1, half_precision=False):
        super().__init__(classnames, clip_model, n_ctx, ctx_init, n_ctx_from_words=n_ctx_from_words)
        text_width = clip_model.ln_final.weight.shape[0]
        vision_width = clip_model.visual.transformer.width
        # Upstream's draw order: ctx, proj, the deep text prompts, then ONE coupling that
        # is deep-copied, so every compound_prompt_projections starts identical.
        self.proj = nn.Linear(text_width, vision_width)
        if half_precision:
            self.proj.half()  # upstream: always fp16 (its only precision that runs)
        self.compound_prompts_text = nn.ParameterList(
            [nn.Parameter(torch.empty(self.n_ctx, text_width)) for _ in range(depth - 1)])
        for prompt in self.compound_prompts_text:
            nn.init.normal_(prompt, std=0.02)
        coupling = nn.Linear(text_width, vision_width)
        self.compound_prompt_projections = nn.ModuleList(
            [copy.deepcopy(coupling) for _ in range(depth - 1)])

    def vision_prompts(self):
        """Layer 0's vision prompt and those of layers 1..J-1, coupled from the text ones."""
        return self.proj(self.ctx), [coupling(prompt) for coupling, prompt in
                                     zip(self.compound_prompt_projections, self.compound_prompts_text)]


class MultiModalPromptedCLIP(DeepPromptedCLIP):
    def text_layer_prompts(self):
        return [None] + [as_upstream_fp16(prompt, self.dtype)
                         for prompt in self.prompt_learner.compound_prompts_text]

    def vision_prompts(self):
        first, deeper = self.prompt_learner.vision_prompts()
        return (as_upstream_fp16(first, self.dtype),
                [None] + [as_upstream_fp16(prompt, self.dtype) for prompt in deeper])


@TRAINER_REGISTRY.register()
class MaPLe(UpstreamRegisteredTrainer):
    CONFIG_NODE = "MAPLE"

    def trained_modules(self):
        return {"MultiModalPromptLearner": self.model}  # upstream's name for the whole model

    def unfrozen_image_features(self):
        return ("MaPLe's vision prompts, coupled from its text prompts (TRAINER.MAPLE.PROMPT_DEPTH), "
                "change them at every step")

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        check_deep_cfg(cfg, self.CONFIG_NODE, ["PROMPT_DEPTH"])
        if cfg.TRAINER.MAPLE.PROMPT_DEPTH < 1:
            raise ConfigError("TRAINER.MAPLE.PROMPT_DEPTH must be at least 1 (1: prompts at the "
                              f"input only); got {cfg.TRAINER.MAPLE.PROMPT_DEPTH}")

    def build_custom_clip(self, clip_model):
        options = self.method_cfg
        depth = [("TRAINER.MAPLE.PROMPT_DEPTH", options.PROMPT_DEPTH)]
        check_deep_prompting(clip_model, self.cfg.MODEL.BACKBONE.NAME, depth, depth)
        prompt_learner = upstream_prompt_learner(
            self.dm.dataset.classnames, clip_model, options.N_CTX, options.CTX_INIT,
            learner=MultiModalPromptLearner, depth=options.PROMPT_DEPTH,
            half_precision=self.precision == "fp16")
        return MultiModalPromptedCLIP(clip_model, prompt_learner)

    def compute_loss(self, images, label):
        # Upstream logs the loss only (no training accuracy).
        return {"loss": super().compute_loss(images, label)["loss"]}
