"""CoCoOp: Conditional Context Optimization (Zhou et al., "Conditional Prompt Learning
for Vision-Language Models", CVPR 2022, arXiv 2203.05557): a small meta-network turns
each image's feature into a shift of the shared context."""
from collections import OrderedDict
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn import functional as F

from dassl.engine import TRAINER_REGISTRY

from .clip_prompting import PromptedCLIP, PromptLearner, normalize
from .prompt_trainer import PromptTuningTrainer


class ConditionalPromptLearner(PromptLearner):
    """CoOp's shared context plus ``meta_net``: image feature -> context shift."""

    def __init__(self, classnames, clip_model, n_ctx, ctx_init, half_precision):
        super().__init__(classnames, clip_model, n_ctx, ctx_init)
        vis_dim = clip_model.visual.output_dim
        ctx_dim = clip_model.ln_final.weight.shape[0]
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(vis_dim // 16, ctx_dim)),
        ]))
        if half_precision:
            self.meta_net.half()

    def forward(self, image_features):
        """Prompt embeddings of every class for every image: ``(batch, n_cls, n_tkn, dim)``."""
        shift = self.meta_net(image_features).unsqueeze(1)  # (batch, 1, dim)
        ctx_shifted = self.ctx.unsqueeze(0) + shift  # (batch, n_ctx, dim)
        ctx_per_class = ctx_shifted.unsqueeze(1).expand(-1, self.n_cls, -1, -1)
        return self.assemble(ctx_per_class)


class ConditionalPromptedCLIP(PromptedCLIP):
    """Frozen CLIP whose class prompts depend on the image."""

    def predict(self, image_features):
        logit_scale = self.logit_scale.exp()
        prompts = self.prompt_learner(image_features)
        tokenized_prompts = self.prompt_learner.tokenized_prompts
        # One image at a time, as upstream: its n_cls prompts go through the text
        # encoder together (all images at once would need batch x n_cls sequences).
        logits = []
        for prompts_i, image_feature_i in zip(prompts, image_features):
            text_features = normalize(self.text_encoder(prompts_i, tokenized_prompts))
            logits.append(logit_scale * image_feature_i @ text_features.t())
        return torch.stack(logits)

    def frozen_text_features(self):
        return nullcontext()  # the text features depend on each image: nothing to share


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTuningTrainer):
    CONFIG_NODE = "COCOOP"

    def build_custom_clip(self, clip_model):
        options = self.method_cfg
        prompt_learner = ConditionalPromptLearner(
            self.dm.dataset.classnames, clip_model, n_ctx=options.N_CTX,
            ctx_init=options.CTX_INIT, half_precision=self.precision == "fp16")
        return ConditionalPromptedCLIP(clip_model, prompt_learner)

    def compute_loss(self, images, label):
        # Upstream CoCoOp reports the loss only (no training accuracy).
        logits = self.model.predict(self.encoded(images)["features"])
        return {"loss": F.cross_entropy(logits, label)}
