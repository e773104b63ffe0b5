"""E2MIM (Zhang, "Generalizable Prompt Tuning for Vision-Language Models", arXiv 2410.03189).

Soft prompts (CoOp's context) and hand-crafted prompts are two views of the text
modality; a learnable critic estimates the mutual information between the two
views, and the prompt and the critic both maximise it; class-wise visual Mixup adds
mixed samples with soft targets:

    L = CE(z_s(v), y) + W_MIX * softCE(z_s(v_mix), y_mix) - W_MI * I(view_s; view_h)

``VIEWS`` says what the two views are for the MI: each sample's class probabilities
under either prompt (``probabilities``: original and mixed samples), or the classes'
text features (``text_features``: class c's soft and hand-crafted features are a
joint pair); ``MIX_VIEWS`` adds the mixed samples (or their mixed classes) as
further dual views. The specification is the project's docs/E2MIM.md; every open choice is
a ``TRAINER.E2MIM`` key. The critic is its own registered model (its own optimiser at
a constant rate; checkpointed and resumed) and is not used, nor loaded, for inference.
"""
import warnings

import torch
from torch.nn import functional as F

from dassl.engine import TRAINER_REGISTRY
from datasets.errors import ConfigError

from .clip_prompting import (
    PromptedCLIP,
    PromptLearner,
    hand_crafted_text_features,
    normalize,
)
from .distributed import world_size
from .mixup import ClassWiseMixup, MixPlan, mix, soft_cross_entropy, soft_targets
from .mutual_information import MutualInformationEstimator, random_derangement
from .prompt_trainer import PromptTuningTrainer
from .random_streams import CRITIC_INIT, DERANGEMENT, MIXUP, stream_generator, stream_seed
from .templates import ensemble_templates, template_for


class DualViewCLIP(PromptedCLIP):
    """Frozen CLIP with the soft and the hand-crafted view; predicts with the soft
    view (``soft``) or with ``(1 - weight) * z_s + weight * z_h`` (``ensemble``)."""

    def __init__(self, clip_model, prompt_learner, hand_crafted_text_features, inference,
                 ensemble_weight):
        super().__init__(clip_model, prompt_learner, hand_crafted_text_features)
        self.inference = inference
        self.ensemble_weight = ensemble_weight

    def classify(self, image_features, text_features):
        logits = self.logits(image_features, text_features)
        if self.inference == "ensemble":
            hand_crafted_logits = self.logits(image_features, self.hand_crafted_text_features)
            logits = ((1 - self.ensemble_weight) * logits
                      + self.ensemble_weight * hand_crafted_logits)
        return logits


@TRAINER_REGISTRY.register()
class E2MIM(PromptTuningTrainer):
    CONFIG_NODE = "E2MIM"

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        options = cfg.TRAINER.E2MIM
        if (options.W_MI > 0 and options.VIEWS == "probabilities"
                and cfg.DATALOADER.TRAIN_X.BATCH_SIZE < 2):
            raise ConfigError(
                "TRAINER.E2MIM.W_MI > 0 needs DATALOADER.TRAIN_X.BATCH_SIZE >= 2: the mutual-"
                "information estimate contrasts the views of one sample (joint pairs) with "
                "views of different samples (product-of-marginals pairs), and a batch of one "
                "sample (one class, so no mixed sample either) has no such pair. Use a larger "
                "batch, or W_MI 0")
        if world_size() > 1 and options.MIXUP_LEVEL == "image":
            raise ConfigError(
                f"TRAINER.E2MIM.MIXUP_LEVEL image cannot be used with {world_size()} processes: "
                "image-level Mixup mixes pixels of partners that other processes hold (they "
                "share features only). Use MIXUP_LEVEL feature, or one process")
        if not 0 <= options.ENSEMBLE_WEIGHT <= 1:
            raise ConfigError(f"TRAINER.E2MIM.ENSEMBLE_WEIGHT must be in [0, 1]; "
                              f"got {options.ENSEMBLE_WEIGHT}")
        if options.CRITIC_LR <= 0 and options.CRITIC_LR_MULT <= 0:
            raise ConfigError(f"TRAINER.E2MIM.CRITIC_LR must be > 0; got {options.CRITIC_LR}")
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
        hand_crafted_features = hand_crafted_text_features(clip_model.to(self.device), classnames,
                                                           templates, self.device)
        return DualViewCLIP(clip_model, prompt_learner, hand_crafted_features, options.INFERENCE,
                            options.ENSEMBLE_WEIGHT)

    def build_model(self):
        super().build_model()
        cfg, options = self.cfg, self.method_cfg
        self.mixup = ClassWiseMixup(options.MIXUP_ALPHA, options.MIXUP_PROB)
        # The critic is initialised from its own stream so that building it leaves
        # the global RNG (batch order, augmentation) exactly as CoOp's would be.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.run_seed, CRITIC_INIT))
            # Probabilities live in R^classes; text features in CLIP's embedding space,
            # where a bilinear critic starts as the views' inner product.
            text_views = options.VIEWS == "text_features"
            dim = (self.model.hand_crafted_text_features.shape[1] if text_views
                   else self.num_classes)
            self.critic = MutualInformationEstimator(
                dim, options.ESTIMATOR, options.CRITIC, options.CRITIC_HIDDEN,
                options.CRITIC_LAYERS, options.MINE_EMA, identity=text_views).to(self.device)
        self.critic_optim = build_critic_optimizer(self.critic, options, cfg.OPTIM)
        self.register_model("critic", self.critic, self.critic_optim, None)  # constant LR

    # ------------------------------------------------------------------ training
    def unfrozen_image_features(self):
        if self.method_cfg.MIXUP_LEVEL == "image":
            return "TRAINER.E2MIM.MIXUP_LEVEL image mixes pixels before the image encoder"
        return None

    def compute_loss(self, images, label):
        """CE on the batch, the Mixup term on its class-wise mixed samples, and the MI
        estimate between the two text views (of the batch's samples, or of the classes;
        with ``MIX_VIEWS``, of the mixed samples or mixed classes too)."""
        options, model = self.method_cfg, self.model
        image_features = self.encoded(images)["features"]
        text_features = model.text_features()  # the soft view's class text features
        logits = model.logits(image_features, text_features)
        terms = {"loss": F.cross_entropy(logits, label), "logits": logits}

        mix_views = options.W_MI > 0 and options.MIX_VIEWS
        plan = None
        if options.W_MIX > 0 or mix_views:
            plan = self.mixup.plan(label, self.step_rng(MIXUP))
        # The samples whose probabilities the MI compares: the batch, then its mixed samples.
        sample_features, sample_logits = image_features, logits
        if plan is not None and (options.W_MIX > 0 or options.VIEWS == "probabilities"):
            mixed_features = self.mixed_image_features(images, image_features, plan)
            mixed_logits = model.logits(mixed_features, text_features)
            if options.W_MIX > 0:
                terms["loss_mix"] = mixup_loss(mixed_logits, label, plan, self.num_classes)
                terms["loss"] = terms["loss"] + options.W_MIX * terms["loss_mix"]
            if mix_views:
                sample_features = torch.cat([image_features, mixed_features])
                sample_logits = torch.cat([logits, mixed_logits])

        if options.W_MI > 0 and options.VIEWS == "text_features":
            terms["mi"] = self.class_mi_estimate(text_features, label,
                                                 plan if mix_views else None)
        elif options.W_MI > 0 and sample_features.shape[0] >= 2:  # one sample: no marginal pair
            terms["mi"] = self.mi_estimate(sample_features, sample_logits)
        if "mi" in terms:
            terms["loss"] = terms["loss"] - options.W_MI * terms["mi"]
        return terms

    def step_rng(self, stream):
        return stream_generator(self.run_seed, stream, self.epoch, self.batch_idx)

    def mixed_image_features(self, images, image_features, plan):
        """Normalised features of the mixed samples: mixed features (``feature``), or
        the features of mixed pixels (``image``)."""
        if self.method_cfg.MIXUP_LEVEL == "feature":
            return normalize(mix(image_features, plan))
        return self.model.image_features(mix(images.pixels, plan))

    def mi_estimate(self, sample_features, soft_logits):
        """Î(p_soft; p_hand) over the samples: each view's class probabilities at
        ``TEMPERATURE``; the hand-crafted view is frozen (no gradient)."""
        temperature = self.method_cfg.TEMPERATURE
        p_soft = F.softmax(soft_logits.float() / temperature, dim=-1)
        with torch.no_grad():
            hand_crafted_logits = self.model.logits(sample_features,
                                                    self.model.hand_crafted_text_features)
            p_hand = F.softmax(hand_crafted_logits.float() / temperature, dim=-1)
        perm = random_derangement(sample_features.shape[0], self.step_rng(DERANGEMENT))
        return self.critic(p_soft, p_hand, perm)

    def class_mi_estimate(self, text_features, label, plan=None):
        """Î(t_s; t_h) over the classes: the soft and the hand-crafted text features of
        each class are a joint pair, at CLIP's logit scale (T = s t_s^T W t_h). With a
        Mixup ``plan``, each mixed sample adds a joint pair: both views' features of its
        two classes mixed with its weight, normalize(λ t(c1) + (1 - λ) t(c2))."""
        soft_view = text_features.float()
        hand_view = self.model.hand_crafted_text_features.float()
        if plan is not None:
            classes = MixPlan(label[plan.first], label[plan.partner], plan.lam)
            soft_view = torch.cat([soft_view, normalize(mix(soft_view, classes))])
            hand_view = torch.cat([hand_view, normalize(mix(hand_view, classes))])
        scale = self.model.logit_scale.exp().detach()
        perm = random_derangement(soft_view.shape[0], self.step_rng(DERANGEMENT))
        return self.critic(scale * soft_view, hand_view, perm)

    def backward(self, terms):
        # The critic maximises Î itself: its gradient is that of -Î alone (not scaled
        # by W_MI); the prompt's is that of the whole loss. Each backward fills only
        # its inputs.
        if "mi" in terms:
            self.scaled(-terms["mi"]).backward(inputs=list(self.critic.parameters()),
                                               retain_graph=True)
        prompt_params = [p for p in self.model.prompt_learner.parameters() if p.requires_grad]
        self.scaled(terms["loss"]).backward(inputs=prompt_params)
        self.average_gradients()


def build_critic_optimizer(critic, options, prompt_optim):
    """The critic's optimiser (``CRITIC_OPTIM`` at ``CRITIC_LR``), not the prompt's: the
    prompt's SGD at 0.002 with its warm-up leaves a critic at the independence floor."""
    lr = options.CRITIC_LR
    if options.CRITIC_LR_MULT > 0:
        lr = prompt_optim.LR * options.CRITIC_LR_MULT
        warnings.warn(f"TRAINER.E2MIM.CRITIC_LR_MULT is deprecated: the critic has its own "
                      f"optimiser; set TRAINER.E2MIM.CRITIC_LR (now {lr:g}) instead",
                      FutureWarning, stacklevel=2)
    if options.CRITIC_OPTIM == "adam":
        return torch.optim.Adam(critic.parameters(), lr=lr)
    return torch.optim.SGD(critic.parameters(), lr=lr, momentum=prompt_optim.MOMENTUM)


def mixup_loss(mixed_logits, label, plan, num_classes):
    """Soft-target cross-entropy of the mixed samples against their mixed labels."""
    return soft_cross_entropy(mixed_logits, soft_targets(label, plan, num_classes))
