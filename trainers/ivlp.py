"""IVLP: independent deep vision and language prompts (the baseline of MaPLe, Khattak et
al., CVPR 2023, arXiv 2210.03117, and of PromptSRC): learned text context at the input of
the first PROMPT_DEPTH_TEXT text layers, learned tokens appended to the patch tokens of
the first PROMPT_DEPTH_VISION vision layers; cross-entropy. docs/DEEP_PROMPTS.md."""
from dassl.engine import TRAINER_REGISTRY
from datasets.errors import ConfigError

from .deep_prompts import (
    DeepPromptedCLIP,
    UpstreamRegisteredTrainer,
    add_layer_prompts,
    as_upstream_fp16,
    attached_layer_prompts,
    check_deep_cfg,
    check_deep_prompting,
    new_prompt,
    upstream_prompt_learner,
)


class IndependentPromptedCLIP(DeepPromptedCLIP):
    """Frozen CLIP with IVLP's prompts, attached to the towers under upstream's names."""

    def __init__(self, clip_model, prompt_learner, n_ctx_vision, depth_vision, depth_text):
        visual = clip_model.visual
        if depth_vision > 0:
            # Upstream draws VPT while building its modified ViT; the draw order differs here
            # (docs/DEEP_PROMPTS.md: the values of a seed differ, the distribution does not).
            visual.VPT = new_prompt(n_ctx_vision, visual.transformer.width)
            add_layer_prompts(visual.transformer, n_ctx_vision, depth_vision)
        add_layer_prompts(clip_model.transformer, prompt_learner.n_ctx, depth_text)
        super().__init__(clip_model, prompt_learner)
        # The text blocks, held apart from the text encoder, which TRAIN.TEXT_ENCODER may
        # wrap (a tuple: not registered twice, the checkpoint keys stay upstream's).
        self.text_blocks = tuple(clip_model.transformer.resblocks)

    def text_layer_prompts(self):
        return attached_layer_prompts(self.text_blocks, self.dtype)

    def vision_prompts(self):
        visual = self.image_encoder
        if not hasattr(visual, "VPT"):
            return None
        return (as_upstream_fp16(visual.VPT, self.dtype),
                attached_layer_prompts(visual.transformer.resblocks, self.dtype))


@TRAINER_REGISTRY.register()
class IVLP(UpstreamRegisteredTrainer):
    CONFIG_NODE = "IVLP"

    def trained_modules(self):
        return {"VLPromptLearner": self.model}  # upstream's name for the whole model

    def unfrozen_image_features(self):
        depth = self.method_cfg.PROMPT_DEPTH_VISION
        if depth > 0:
            return (f"TRAINER.{self.CONFIG_NODE}.PROMPT_DEPTH_VISION is {depth}: deep vision "
                    f"prompts change them at every step")
        return None

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        options = cfg.TRAINER[self.CONFIG_NODE]
        check_deep_cfg(cfg, self.CONFIG_NODE, ["PROMPT_DEPTH_VISION", "PROMPT_DEPTH_TEXT"])
        if options.PROMPT_DEPTH_TEXT < 1:
            raise ConfigError(f"TRAINER.{self.CONFIG_NODE}.PROMPT_DEPTH_TEXT must be at least 1 "
                              f"(the text context is layer 0's prompt); got {options.PROMPT_DEPTH_TEXT}")
        if options.PROMPT_DEPTH_VISION > 0 and options.N_CTX_VISION < 1:
            raise ConfigError(f"TRAINER.{self.CONFIG_NODE}.N_CTX_VISION must be at least 1 when "
                              f"PROMPT_DEPTH_VISION is {options.PROMPT_DEPTH_VISION}")

    def build_custom_clip(self, clip_model):
        options = self.method_cfg
        node = f"TRAINER.{self.CONFIG_NODE}"
        check_deep_prompting(clip_model, self.cfg.MODEL.BACKBONE.NAME,
                             [(f"{node}.PROMPT_DEPTH_VISION", options.PROMPT_DEPTH_VISION)],
                             [(f"{node}.PROMPT_DEPTH_TEXT", options.PROMPT_DEPTH_TEXT)])
        prompt_learner = upstream_prompt_learner(self.dm.dataset.classnames, clip_model,
                                                 options.N_CTX_TEXT, options.CTX_INIT)
        return IndependentPromptedCLIP(clip_model, prompt_learner, options.N_CTX_VISION,
                                       options.PROMPT_DEPTH_VISION, options.PROMPT_DEPTH_TEXT)

    def compute_loss(self, images, label):
        # Upstream logs the loss only (no training accuracy).
        return {"loss": super().compute_loss(images, label)["loss"]}
