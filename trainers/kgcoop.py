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
    load_clip_to_cpu,
    normalize,
    tokenize_prompts,
)
from .prompt_trainer import PromptTuningTrainer
from .templates import KGCOOP_TEMPLATES, fill_template, template_for


def knowledge_guidance(text_features, hand_crafted_text_features):
    """1 - mean cosine between learned and hand-crafted class text features
    (upstream computes it with ``CosineSimilarity(dim=1, eps=1e-7)``)."""
    cosine = F.cosine_similarity(text_features, hand_crafted_text_features, dim=1, eps=1e-07)
    return 1.0 - cosine.mean()


@torch.no_grad()
def hand_crafted_features_as_upstream(cfg, classnames, template, dtype, device):
    """The hand-crafted prompts' normalised class text features as upstream KgCoOp
    computes them, in every precision, and upstream's random draws around them.

    Upstream quirk kept: its prompt learner builds a second CLIP, never converted from
    the released fp16 weights, and encodes the prompts with it over all 77 positions
    of the context. So under PREC fp32 the teacher is fp16 (up to 5.5e-4 from fp32
    features on the tiny test model); as the teacher prompt "a photo of a {}." is also
    the initial learned prompt, the guidance gradient is non-zero from the first step.
    In fp16, stopping at the last end-of-text token (as our TextEncoder does) changes
    the rounding of most values too. We build the same copy, use it once and drop it:
    the run keeps one CLIP, upstream two.

    Upstream also builds modules it never uses (a ``bias_vectors`` parameter before the
    copy; a ``meta_net`` and an ``Adapter`` after it). Their initialisation, and the
    copy's, draw from the global RNG and so shift every later draw (sampling,
    augmentation) of a seeded run: we make the same draws in the same order.
    """
    nn.init.normal_(torch.empty(1, 512, dtype=dtype), std=0.02)  # bias_vectors
    teacher = load_clip_to_cpu(cfg).to(device)  # fp16, as released
    tokens = tokenize_prompts(fill_template(template, classnames)).to(device)
    features = normalize(teacher.encode_text(tokens))
    del teacher
    nn.Linear(512, 512)  # meta_net
    nn.Linear(512, 512 // 4, bias=False)  # Adapter(512, reduction=4)
    nn.Linear(512 // 4, 512, bias=False)
    # Upstream normalises the stored (already normalised) features once more, in every
    # step; in fp16 that can move the last bit. The same tensor every step: once here.
    return normalize(features)


@TRAINER_REGISTRY.register()
class KgCoOp(PromptTuningTrainer):
    CONFIG_NODE = "KGCOOP"

    def build_custom_clip(self, clip_model):
        cfg, options = self.cfg, self.method_cfg
        classnames = self.dm.dataset.classnames
        prompt_learner = PromptLearner(classnames, clip_model, n_ctx=options.N_CTX,
                                       ctx_init=options.CTX_INIT, csc=options.CSC)
        template = template_for(cfg.DATASET, KGCOOP_TEMPLATES)
        print(f"Prompts: {fill_template(template, classnames)}")
        hand_crafted = hand_crafted_features_as_upstream(cfg, classnames, template,
                                                         clip_model.dtype, self.device)
        return PromptedCLIP(clip_model, prompt_learner, hand_crafted)

    def compute_loss(self, images, label):
        text_features = self.model.text_features()
        logits = self.model.logits(self.encoded(images)["features"], text_features)
        guidance = knowledge_guidance(text_features, self.model.hand_crafted_text_features)
        # Upstream logs the total only: the loss lines stay upstream's.
        return {"loss": F.cross_entropy(logits, label) + self.method_cfg.W * guidance,
                "logits": logits}
