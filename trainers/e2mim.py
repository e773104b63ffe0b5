"""E2MIM (Zhang, "Generalizable Prompt Tuning for Vision-Language Models", arXiv 2410.03189).

Soft prompts (CoOp's context) and hand-crafted prompts are two views of the text
modality; a learnable critic estimates the mutual information between the class
probabilities the two views give for the same image, on original and class-wise
mixed samples, and the prompt and the critic both maximise it:

    L = CE(z_s(v), y) + W_MIX * softCE(z_s(v_mix), y_mix) - W_MI * I(p_s; p_h)

The specification is the project's docs/E2MIM.md; every open choice is a
``TRAINER.E2MIM`` key. The critic is its own registered model (own optimizer and
scheduler; checkpointed and resumed) and is not used, nor loaded, for inference.
"""
from contextlib import nullcontext

import numpy as np
import torch
from torch.nn import functional as F

from dassl.engine import TRAINER_REGISTRY
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from runs.errors import ConfigError

from .clip_prompting import (
    PromptedCLIP,
    PromptLearner,
    hand_crafted_text_features,
    normalize,
)
from .mixup import ClassWiseMixup, mix, soft_cross_entropy, soft_targets
from .mutual_information import CRITICS, ESTIMATORS, MutualInformationEstimator
from .prompt_trainer import PromptTuningTrainer
from .random_streams import CRITIC_INIT, DERANGEMENT, MIXUP, stream_seed
from .templates import ensemble_templates, template_for

CHOICES = {
    "ESTIMATOR": ESTIMATORS,
    "CRITIC": CRITICS,
    "MIXUP_LEVEL": ("feature", "image"),
    "INFERENCE": ("soft", "ensemble"),
    "TEMPLATES": ("dataset", "ensemble"),
}

class DualViewCLIP(PromptedCLIP):
    """Frozen CLIP with the soft and the hand-crafted view; predicts with the soft
    view (``soft``) or with ``(1 - weight) * z_s + weight * z_h`` (``ensemble``)."""

    def __init__(self, clip_model, prompt_learner, hand_crafted, inference, ensemble_weight):
        super().__init__(clip_model, prompt_learner, hand_crafted)
        self.inference = inference
        self.ensemble_weight = ensemble_weight

    def classify(self, image_features, text_features):
        logits = self.logits(image_features, text_features)
        if self.inference == "ensemble":
            hand_crafted = self.logits(image_features, self.hand_crafted_text_features)
            logits = (1 - self.ensemble_weight) * logits + self.ensemble_weight * hand_crafted
        return logits


@TRAINER_REGISTRY.register()
class E2MIM(PromptTuningTrainer):
    CONFIG_NODE = "E2MIM"

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        options = cfg.TRAINER.E2MIM
        for key, valid in CHOICES.items():
            if options[key] not in valid:
                raise ConfigError(f"TRAINER.E2MIM.{key} must be one of {', '.join(valid)}; "
                                  f"got {options[key]!r}")
        if options.W_MI > 0 and cfg.DATALOADER.TRAIN_X.BATCH_SIZE < 2:
            raise ConfigError(
                "TRAINER.E2MIM.W_MI > 0 needs DATALOADER.TRAIN_X.BATCH_SIZE >= 2: the mutual-"
                "information estimate contrasts the views of one sample (joint pairs) with "
                "views of different samples (product-of-marginals pairs), and a batch of one "
                "sample (one class, so no mixed sample either) has no such pair. Use a larger "
                "batch, or W_MI 0")
        if cfg.TRAIN.FEATURE_CACHE.ENABLED and options.MIXUP_LEVEL == "image":
            raise ConfigError(
                "TRAIN.FEATURE_CACHE.ENABLED True cannot be used with TRAINER.E2MIM.MIXUP_LEVEL "
                "image: image-level Mixup mixes pixels before the image encoder, and cached "
                "features cannot be mixed that way. Use MIXUP_LEVEL feature, or turn the "
                "feature cache off")
        if not 0 <= options.ENSEMBLE_WEIGHT <= 1:
            raise ConfigError(f"TRAINER.E2MIM.ENSEMBLE_WEIGHT must be in [0, 1]; "
                              f"got {options.ENSEMBLE_WEIGHT}")
        if options.TEMPERATURE <= 0:
            raise ConfigError(f"TRAINER.E2MIM.TEMPERATURE must be > 0; got {options.TEMPERATURE}")

    def build_custom_clip(self, clip_model):
        options = self.method_cfg
        classnames = self.dm.dataset.classnames
        prompt_learner = PromptLearner(classnames, clip_model, n_ctx=options.N_CTX,
                                       ctx_init=options.CTX_INIT,
                                       class_token_position=options.CLASS_TOKEN_POSITION)
        templates = ([template_for(self.cfg.DATASET)] if options.TEMPLATES == "dataset"
                     else ensemble_templates(self.cfg.DATASET))
        print(f"Hand-crafted view: {len(templates)} template(s), e.g. {templates[-1]!r}")
        # The hand-crafted view is frozen: encoded once per class list, here.
        hand_crafted = hand_crafted_text_features(clip_model.to(self.device), classnames,
                                                  templates, self.device)
        return DualViewCLIP(clip_model, prompt_learner, hand_crafted, options.INFERENCE,
                            options.ENSEMBLE_WEIGHT)

    def build_model(self):
        super().build_model()
        cfg, options = self.cfg, self.method_cfg
        self.mixup = ClassWiseMixup(options.MIXUP_ALPHA, options.MIXUP_PROB,
                                    (self.run_seed, MIXUP))
        # The critic is initialised from its own stream so that building it leaves
        # the global RNG (batch order, augmentation) exactly as CoOp's would be.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.run_seed, CRITIC_INIT))
            self.critic = MutualInformationEstimator(
                self.num_classes, options.ESTIMATOR, options.CRITIC, options.CRITIC_HIDDEN,
                options.CRITIC_LAYERS, options.MINE_EMA).to(self.device)
        critic_optim_cfg = cfg.OPTIM.clone()
        critic_optim_cfg.defrost()
        critic_optim_cfg.LR = cfg.OPTIM.LR * options.CRITIC_LR_MULT
        self.critic_optim = build_optimizer(self.critic, critic_optim_cfg)
        self.critic_sched = build_lr_scheduler(self.critic_optim, critic_optim_cfg)
        self.register_model("critic", self.critic, self.critic_optim, self.critic_sched)

    # ------------------------------------------------------------------ training
    def compute_losses(self, image, label):
        """``(loss, logits, mi_estimate or None, summary)`` for one batch."""
        options, model = self.method_cfg, self.model
        image_features = model.image_features(image)
        text_features = model.text_features()
        logits = model.logits(image_features, text_features)
        loss = F.cross_entropy(logits, label)
        summary = {}

        views, soft_logits = image_features, logits  # all samples of the step, for the MI
        plan = None
        if options.W_MIX > 0 or options.W_MI > 0:
            plan = self.mixup.plan(label, self.epoch, self.batch_idx)
        if plan is not None:
            if options.MIXUP_LEVEL == "feature":
                mixed_features = normalize(mix(image_features, plan))
            else:
                mixed_features = model.image_features(mix(image, plan))
            mixed_logits = model.logits(mixed_features, text_features)
            if options.W_MIX > 0:
                targets = soft_targets(label, plan, self.num_classes)
                loss_mix = soft_cross_entropy(mixed_logits, targets)
                loss = loss + options.W_MIX * loss_mix
                summary["loss_mix"] = loss_mix.item()
            views = torch.cat([image_features, mixed_features])
            soft_logits = torch.cat([logits, mixed_logits])

        mi_estimate = None
        if options.W_MI > 0 and views.shape[0] >= 2:  # one sample has no marginal pair
            p_soft = F.softmax(soft_logits.float() / options.TEMPERATURE, dim=-1)
            with torch.no_grad():
                p_hand = F.softmax(model.logits(views, model.hand_crafted_text_features)
                                   .float() / options.TEMPERATURE, dim=-1)
            rng = np.random.default_rng(
                [self.run_seed, DERANGEMENT, self.epoch, self.batch_idx])
            mi_estimate = self.critic(p_soft, p_hand, rng)
            loss = loss - options.W_MI * mi_estimate
            summary["mi"] = mi_estimate.item()
        return loss, logits, mi_estimate, summary

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with torch.autocast("cuda") if self.precision == "amp" else nullcontext():
            loss, logits, mi_estimate, summary = self.compute_losses(image, label)
        self.check_finite(loss, summary)
        self.model_zero_grad()
        # The critic's gradient is that of -I alone (not scaled by W_MI); the
        # prompt's is that of the whole loss. Each backward fills only its inputs.
        if mi_estimate is not None:
            self._backward(-mi_estimate, list(self.critic.parameters()), retain_graph=True)
        prompt_params = [p for p in self.model.prompt_learner.parameters() if p.requires_grad]
        self._backward(loss, prompt_params)
        if self.scaler is None:
            self.model_update()
        else:
            self.scaler.step(self.optim)
            if mi_estimate is not None:  # a GradScaler refuses an optimizer without gradients
                self.scaler.step(self.critic_optim)
            self.scaler.update()

        loss_summary = {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item(),
                        **summary}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return loss_summary

    def _backward(self, loss, inputs, retain_graph=False):
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward(inputs=inputs, retain_graph=retain_graph)
