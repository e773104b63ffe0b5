"""KgCoOp: Knowledge-guided Context Optimization (Yao et al., CVPR 2023,
arXiv 2303.13283): CoOp plus a term that keeps the learned class text features
close to those of the hand-crafted prompts,
``loss = CE + W * (1 - mean_c cos(learned_c, hand_crafted_c))``."""
import torch
from torch import nn
from torch.nn import functional as F

from dassl.engine import TRAINER_REGISTRY

from .clip_prompting import (
    PromptedCLIP,
    PromptLearner,
    hand_crafted_text_features,
    load_clip_to_cpu,
    normalize,
)
from .prompt_trainer import PromptTuningTrainer
from .templates import KGCOOP_TEMPLATES, fill_template, template_for


def knowledge_guidance(text_features, hand_crafted_text_features):
    """1 - mean cosine between learned and hand-crafted class text features
    (upstream computes it with ``CosineSimilarity(dim=1, eps=1e-7)``)."""
    cosine = F.cosine_similarity(text_features, hand_crafted_text_features, dim=1, eps=1e-07)
    return 1.0 - cosine.mean()


def replay_upstream_unused_draws(cfg, dtype):
    """Upstream KgCoOp builds modules it never uses: a ``bias_vectors`` parameter, a
    second copy of CLIP, a ``meta_net`` and an ``Adapter``. Their initialisation
    draws from the global RNG and so shifts every later random draw (sampling,
    augmentation) of a seeded run. We make the same draws, in the same order,
    and keep nothing, so that seeded runs match upstream's."""
    nn.init.normal_(torch.empty(1, 512, dtype=dtype), std=0.02)  # bias_vectors
    load_clip_to_cpu(cfg)  # the second CLIP (building it initialises its layers)
    nn.Linear(512, 512)  # meta_net
    nn.Linear(512, 512 // 4, bias=False)  # Adapter(512, reduction=4)
    nn.Linear(512 // 4, 512, bias=False)


@TRAINER_REGISTRY.register()
class KgCoOp(PromptTuningTrainer):
    CONFIG_NODE = "KGCOOP"

    def build_custom_clip(self, clip_model):
        cfg, options = self.cfg, self.method_cfg
        classnames = self.dm.dataset.classnames
        prompt_learner = PromptLearner(classnames, clip_model, n_ctx=options.N_CTX,
                                       ctx_init=options.CTX_INIT, csc=options.CSC)
        replay_upstream_unused_draws(cfg, clip_model.dtype)
        template = template_for(cfg.DATASET, KGCOOP_TEMPLATES)
        print(f"Prompts: {fill_template(template, classnames)}")
        # Encoded on the run's device and in its precision (upstream: an fp16 copy
        # of CLIP on the GPU, the same numbers for an fp16 run).
        hand_crafted = hand_crafted_text_features(clip_model.to(self.device), classnames,
                                                  [template], self.device)
        # Upstream normalises the stored (already normalised) features once more, in
        # every step; in fp16 that can move the last bit, so we do it too, once.
        return PromptedCLIP(clip_model, prompt_learner, normalize(hand_crafted))

    def compute_loss(self, image, label):
        text_features = self.model.text_features()
        logits = self.model.logits(self.model.image_features(image), text_features)
        guidance = knowledge_guidance(text_features, self.model.hand_crafted_text_features)
        # Upstream logs the total only: the loss lines stay upstream's.
        return {"loss": F.cross_entropy(logits, label) + self.method_cfg.W * guidance,
                "logits": logits}
