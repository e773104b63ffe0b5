"""ProGrad: Prompt-aligned Gradient (Zhu et al., "Prompt-aligned Gradient for Prompt
Tuning", ICCV 2023, arXiv 2205.14865): CoOp, updated only along directions that do not
conflict with the zero-shot CLIP's knowledge.

Per step, with student logits ``s``, zero-shot CLIP logits ``z`` and temperature ``T``::

    L_ce = CE(s, y)
    L_kl = T^2 * mean_batch sum_classes -softmax(z / T) * log_softmax(s / T)

(upstream's "kl_loss": the cross-entropy to the teacher's softened probabilities, KL up
to a constant). For every learned parameter, with ``g_ce`` and ``g_kl`` the gradients of
the two terms and ``u = g_kl / |g_kl|``::

    g = g_ce - LAMBDA * (g_ce . u) u    if cos(g_ce, g_kl) < 0,    else g = g_ce

and the optimizer steps along ``g``. Config as upstream: ``TRAINER.COOP`` (N_CTX, CSC,
CLASS_TOKEN_POSITION, PREC; ``CTX_INIT: True`` starts the context from the dataset's
template) and ``LOSS`` (NAME "prograd", T, LAMBDA).
"""
import torch
from torch.nn import functional as F

from dassl.engine import TRAINER_REGISTRY
from datasets.errors import ConfigError

from .clip_prompting import (
    PromptedCLIP,
    PromptLearner,
    load_clip_to_cpu,
    normalize,
    tokenize_prompts,
)
from .prompt_trainer import PromptTuningTrainer, check_context_length
from .templates import PROGRAD_TEMPLATES, fill_template, template_for


def prograd_losses(logits, zero_shot_logits, label, temperature):
    """(L_ce, L_kl) of the module docstring."""
    teacher = F.softmax(zero_shot_logits / temperature, dim=-1)
    soft_ce = -teacher * F.log_softmax(logits / temperature, dim=-1) * temperature * temperature
    return F.cross_entropy(logits, label), soft_ce.sum(1).mean()


def prograd_direction(ce_grad, kl_grad, lambda_):
    """The gradient ProGrad steps along, for one parameter (module docstring). Upstream's
    operations in its order (unit vectors, then the dot product of their flattenings);
    ``where`` instead of a Python ``if`` keeps a GPU step free of a sync, and picks
    ``ce_grad`` when the cosine is NaN (a zero gradient), as upstream's ``if`` does."""
    kl_unit = kl_grad / torch.linalg.norm(kl_grad)
    ce_unit = ce_grad / torch.linalg.norm(ce_grad)
    conflict = torch.dot(ce_unit.flatten(), kl_unit.flatten()) < 0
    projected = ce_grad - lambda_ * torch.dot(ce_grad.flatten(), kl_unit.flatten()) * kl_unit
    return torch.where(conflict, projected, ce_grad)


def template_prompt_learner(classnames, clip_model, n_ctx, template, class_token_position):
    """ProGrad's ``CTX_INIT: True`` context: the template's words before the class name
    (e.g. "a type of pet, a photo of a") in the *last* context vectors, zeros before them.
    Upstream quirk kept, as in CoOp: words are counted, not BPE tokens, so "pet," (two
    tokens) pushes the template's last token into the fixed suffix."""
    if not template.endswith(" {}."):
        raise ConfigError(f"ProGrad starts its context from the words before ' {{}}.' in the "
                          f"dataset's template; {template!r} has none (trainers/templates.py)")
    words = template[:-len(" {}.")].replace("_", " ")
    n_words = len(words.split(" "))
    if n_ctx < n_words:
        raise ConfigError(f"ProGrad starts its context from the template words {words!r} "
                          f"({n_words} words): TRAINER.COOP.N_CTX must be at least {n_words}; "
                          f"got {n_ctx}")
    # The prompt text upstream tokenizes: "X" for each free vector, then the words.
    # PromptLearner takes the embeddings of its first n_ctx tokens as the context; the
    # "X" rows are then zeroed (upstream: torch.zeros with the words written at the end).
    prompt_learner = PromptLearner(classnames, clip_model, n_ctx,
                                   ctx_init=" ".join(["X"] * (n_ctx - n_words) + [words]),
                                   class_token_position=class_token_position)
    with torch.no_grad():
        prompt_learner.ctx[:n_ctx - n_words] = 0
    return prompt_learner


@TRAINER_REGISTRY.register()
class ProGrad(PromptTuningTrainer):
    CONFIG_NODE = "COOP"  # upstream's: ProGrad is configured as CoOp plus LOSS

    def check_context(self, options, key):
        if options.CTX_INIT not in (True, False, None, ""):
            raise ConfigError(
                f"for ProGrad {key}.CTX_INIT is True (the context starts from the "
                f"dataset's template, trainers/templates.py PROGRAD_TEMPLATES) or False "
                f"(random); got the words {options.CTX_INIT!r}")
        check_context_length(options.N_CTX, f"{key}.N_CTX")

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if cfg.LOSS.NAME != "prograd":
            raise ConfigError(f"ProGrad's objective is LOSS.NAME \"prograd\" (set by its "
                              f"published configs, configs/trainers/ProGrad/); got "
                              f"{cfg.LOSS.NAME!r}")
        if cfg.LOSS.T <= 0:
            raise ConfigError(f"LOSS.T (the distillation temperature) must be positive; "
                              f"got {cfg.LOSS.T}")

    def build_custom_clip(self, clip_model):
        cfg, options = self.cfg, self.method_cfg
        classnames = self.dm.dataset.classnames
        template = template_for(cfg.DATASET, PROGRAD_TEMPLATES)

        # The teacher, as upstream's zs_clip: a second CLIP, in fp32 whatever PREC is,
        # built here (between the student's CLIP and the prompt learner: building it
        # draws from the RNG, so seeded runs keep upstream's later draws). Its text
        # features: the dataset's template, tokenized to all 77 positions and encoded once
        # on the CPU, as upstream does before moving the teacher to the GPU.
        print("Building zeroshot CLIP")
        teacher = load_clip_to_cpu(cfg).float()
        prompts = fill_template(template, classnames)
        print(f"Prompts: {prompts}")
        with torch.no_grad():
            zero_shot_text = normalize(teacher.encode_text(tokenize_prompts(prompts)))
        self.zero_shot_logit_scale = teacher.logit_scale.exp().item()
        # Teacher image features: in fp32 the student's frozen image encoder is the same
        # fp32 tower on the same input, so its features are reused (one encoder pass).
        # Under amp the same weights run outside autocast; under fp16 the teacher keeps
        # its own fp32 image tower (the only extra copy, as upstream).
        self.zero_shot_image_encoder = teacher.visual.to(self.device) \
            if self.precision == "fp16" else None

        if options.CTX_INIT:
            prompt_learner = template_prompt_learner(classnames, clip_model, options.N_CTX,
                                                     template, options.CLASS_TOKEN_POSITION)
        else:
            prompt_learner = PromptLearner(classnames, clip_model, n_ctx=options.N_CTX,
                                           csc=options.CSC,
                                           class_token_position=options.CLASS_TOKEN_POSITION)
        return PromptedCLIP(clip_model, prompt_learner, zero_shot_text)

    def unfrozen_image_features(self):
        if self.precision == "fp32":
            return None
        return (f"with TRAINER.COOP.PREC {self.precision} ProGrad's zero-shot teacher encodes the "
                f"pixels in fp32 too (PREC fp32 shares one image encoding)")

    def encode_images(self, pixels):
        """The student's image features, and in amp or fp16 the fp32 teacher's own (in fp32
        the student's frozen fp32 tower is the teacher's: one encoding serves both)."""
        encoded = super().encode_images(pixels)
        if self.precision != "fp32":
            encoder = self.zero_shot_image_encoder
            if encoder is None:
                encoder = self.model.image_encoder
            with torch.no_grad(), torch.autocast("cuda", enabled=False):
                encoded["zero_shot_features"] = normalize(encoder(pixels.float()))
        return encoded

    def zero_shot_logits(self, zero_shot_features):
        """The teacher's logits: fp32 zero-shot CLIP with the dataset's template."""
        return self.zero_shot_logit_scale * zero_shot_features @ self.model.hand_crafted_text_features.t()

    def compute_loss(self, images, label):
        encoded = self.encoded(images)
        image_features = encoded["features"]
        logits = self.model.logits(image_features, self.model.text_features())
        with torch.no_grad():
            zero_shot = self.zero_shot_logits(encoded.get("zero_shot_features", image_features))
        ce, kl = prograd_losses(logits, zero_shot, label, self.cfg.LOSS.T)
        # "loss" is the objective descended (CE), "kl_loss" only steers its direction.
        return {"loss": ce, "logits": logits, "kl_loss": kl}

    def backward(self, terms):
        """Both gradients, then the projection (upstream's prograd_backward_and_update).
        Under amp both are scaled by the same factor: the projection commutes with it.
        With several processes each gradient is averaged before the projection, which is
        not linear: projecting each rank's share would not give one process's step."""
        learned = [p for module in self.trained_modules().values() for p in module.parameters()]
        self.scaled(terms["kl_loss"]).backward(retain_graph=True)
        self.average_gradients(learned)
        kl_grads = [p.grad.clone() for p in learned]
        self.model_zero_grad()
        self.scaled(terms["loss"]).backward()
        self.average_gradients(learned)
        with torch.no_grad():
            for p, kl_grad in zip(learned, kl_grads):
                p.grad = prograd_direction(p.grad, kl_grad, self.cfg.LOSS.LAMBDA)
