"""PromptSRC: Self-regulating Prompts (Khattak et al., ICCV 2023, arXiv 2307.06948).

IVLP's prompts, trained with three self-regulating terms against frozen CLIP, and
aggregated over epochs:

    loss = CE + KL(teacher || student logits) / (batch x classes)
              + TEXT_LOSS_WEIGHT  * L1(text features,  frozen CLIP's mean over 60 templates)
              + IMAGE_LOSS_WEIGHT * L1(image features, frozen CLIP's image features)

(features normalised; L1 the mean absolute difference). Gaussian prompt aggregation
(GPA): after each epoch e (1..MAX_EPOCH) the model's state is added with weight
N(e; GPA_MEAN, GPA_STD), normalised over the epochs; after the last epoch the model
becomes that sum, which the last checkpoint and the final test hold. docs/DEEP_PROMPTS.md.
"""
import numpy as np
import torch
from torch.nn import functional as F

from dassl.engine import TRAINER_REGISTRY

from .clip_prompting import load_clip_to_cpu, normalize, tokenize_to_last_eot
from .ivlp import IVLP
from .templates import IMAGENET_TEMPLATES, fill_template

# PromptSRC's 60 teacher templates: "a photo of a {}." then the first 60 of CLIP's 80
# other than it, in the notebook's order (upstream's trainers/imagenet_templates.py).
PROMPTSRC_TEMPLATES = [IMAGENET_TEMPLATES[39]] + IMAGENET_TEMPLATES[:39] + IMAGENET_TEMPLATES[40:60]


def gpa_weights(mean, std, epochs):
    """The weight of each epoch 1..epochs: the normal density N(e; mean, std), normalised
    to sum 1 (in float64 with numpy, as upstream)."""
    epoch = np.arange(1, epochs + 1, dtype=np.float64)
    density = np.array([1 / (std * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((e - mean) / std) ** 2)
                        for e in epoch])
    return density / sum(density)


@torch.no_grad()
def teacher_text_features(clip_model, classnames, device):
    """Frozen CLIP's class text features: the mean over PROMPTSRC_TEMPLATES of the
    unnormalised features (normalised when used, as upstream)."""
    features = [clip_model.encode_text(tokenize_to_last_eot(fill_template(t, classnames)).to(device))
                for t in PROMPTSRC_TEMPLATES]
    return torch.stack(features, dim=1).mean(dim=1)


@TRAINER_REGISTRY.register()
class PromptSRC(IVLP):
    CONFIG_NODE = "PROMPTSRC"

    def is_trained(self, name):
        return super().is_trained(name) and "ZS_image_encoder" not in name

    def unfrozen_image_features(self):
        return super().unfrozen_image_features() or (
            "PromptSRC's image term encodes the pixels with its zero-shot image tower too")

    def build_custom_clip(self, clip_model):
        cfg, options = self.cfg, self.method_cfg
        model = super().build_custom_clip(clip_model)
        # Upstream builds the two frozen teachers inside the prompt learner: an fp32 CLIP
        # for the text features and, in the release precision, the zero-shot image tower
        # (saved with the model as prompt_learner.ZS_image_encoder). Here the image tower
        # is in the run's precision (fp32 on a CPU; upstream runs only in fp16).
        text_teacher = load_clip_to_cpu(cfg).float().to(self.device)
        zero_shot = load_clip_to_cpu(cfg)
        if self.precision != "fp16":
            zero_shot.float()
        model.prompt_learner.ZS_image_encoder = zero_shot.visual
        model.register_buffer("fixed_embeddings", teacher_text_features(
            text_teacher, self.dm.dataset.classnames, self.device).to(model.dtype).cpu(),
            persistent=False)
        self.gpa_weights = gpa_weights(options.GPA_MEAN, options.GPA_STD, cfg.OPTIM.MAX_EPOCH)
        self.gpa_state = None  # the weighted sum of the epochs' model states so far
        return model

    def encode_images(self, pixels):
        encoded = super().encode_images(pixels)
        with torch.no_grad():
            encoded["zero_shot_features"] = normalize(
                self.model.prompt_learner.ZS_image_encoder(pixels.type(self.model.dtype)))
        return encoded

    def compute_loss(self, images, label):
        model, options = self.model, self.method_cfg
        text_features = model.text_features()
        encoded = self.encoded(images)
        image_features, zero_shot_features = encoded["features"], encoded["zero_shot_features"]
        logits = model.logits(image_features, text_features)
        fixed_embeddings = normalize(model.fixed_embeddings)
        with torch.no_grad():
            # Upstream computes the teacher's logits in fp16 (fixed_embeddings.half()).
            zero_shot_logits = model.logit_scale.exp() * zero_shot_features @ \
                fixed_embeddings.half().to(model.dtype).t()
        loss_text = F.l1_loss(text_features, fixed_embeddings) * options.TEXT_LOSS_WEIGHT
        loss_image = F.l1_loss(image_features, zero_shot_features) * options.IMAGE_LOSS_WEIGHT
        loss_logits = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zero_shot_logits, dim=1),
                               reduction="sum", log_target=True) / logits.numel()
        # Summed in upstream's order (the last bits of the total depend on it).
        loss = F.cross_entropy(logits, label) + (loss_logits + loss_text + loss_image)
        return {"loss": loss}  # upstream logs the total only

    # ------------------------------------------------------------------ GPA
    def after_epoch(self):
        self.aggregate_epoch()
        super().after_epoch()  # saves (the GPA model after the last epoch) and tests

    def aggregate_epoch(self):
        """Add this epoch's model state with its weight; after the last epoch, become the sum."""
        weight = self.gpa_weights[self.epoch]
        state = self.model.state_dict()
        if self.gpa_state is None:
            self.gpa_state = {key: value * weight for key, value in state.items()}
        else:
            self.gpa_state = {key: self.gpa_state[key] + value * weight for key, value in state.items()}
        if self.epoch + 1 == self.max_epoch:
            print("Using GPA model for final inference...")
            self.model.load_state_dict(self.gpa_state)

    def extra_state(self):
        """Checkpoints carry the sum's learned tensors (the frozen ones are replayed on resume:
        every epoch added the same values). Upstream keeps no GPA state, so its resumed run
        never swaps in the GPA model; ours resumes exactly."""
        state = super().extra_state()
        if self.gpa_state is not None:
            learned = {name for name, p in self.model.named_parameters() if p.requires_grad}
            state["gpa_learned"] = {key: value for key, value in self.gpa_state.items() if key in learned}
        return state

    def restore_extra_state(self, checkpoint):
        super().restore_extra_state(checkpoint)
        done = checkpoint["epoch"]  # the epochs aggregated (and the one resuming starts at)
        if done:
            learned = checkpoint.get("gpa_learned", {})
            frozen = {key: value for key, value in self.model.state_dict().items() if key not in learned}
            total = None
            for weight in self.gpa_weights[:done]:
                total = {key: value * weight for key, value in frozen.items()} if total is None else \
                    {key: total[key] + value * weight for key, value in frozen.items()}
            self.gpa_state = {**total, **learned}
