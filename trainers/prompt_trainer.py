"""What every prompt-tuning trainer shares: frozen CLIP, registered learned parts,
and one training step.

A method subclasses ``PromptTuningTrainer``, names its config node
(``cfg.TRAINER.<CONFIG_NODE>``), builds its model in ``build_custom_clip`` and
states its objective in ``compute_loss``, which returns named terms:
``{"loss": total, "logits": ..., <term>: tensor, ...}`` (open_clip's output dict).
It receives the batch's images as ``TrainingImages``: the pixels, or what the method's
``encode_images`` made of them already (never one for the other), and reads them with
``self.encoded(images)``.
The step here (``forward_backward``) runs it under the run's precision, refuses a
non-finite term, zeroes the gradients, calls the ``backward`` hook, steps the
optimizer of every registered model that received gradients (through the
GradScaler under amp) and updates the learning rates at the end of the epoch.
A method with a second trained part (E2MIM's critic) registers it with
``register_model`` and overrides ``backward`` only.

A method declares in ``unfrozen_image_features`` whether its image features are
frozen (a fixed function of the image). The feature cache and several processes read it:
the cache refuses a method whose features are not frozen; with several processes
(``torchrun``) each rank encodes its share of the batch's images (``encode_images``, with
the gradient where the image side learns) and the encodings are gathered
(``global_batch``), so ``compute_loss`` sees the global batch as one process would
(Mixup partners, MI pairs, metrics included); the text encoder shares the classes
(clip_prompting.ClassChunkedTextEncoder); ``backward`` leaves the gradients averaged
over the ranks. A method needs nothing else of its own for it.
"""
import os.path as osp
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch
from torch.nn import functional as F

from clip.clip import CONTEXT_LENGTH
from dassl.engine import TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_checkpoint, load_pretrained_weights
from datasets.config import check_choices
from datasets.errors import ConfigError

from . import distributed
from .clip_prompting import load_clip_for_run, run_precision, text_encoder_for_run
from .distributed import average_gradients, gather_rows, shard_loaders, world_size
from .feature_cache import CachedFeatureLoader, check_feature_cache_cfg, encode_augmentations
from .random_streams import run_seed

# Fixed token embeddings that depend on the class names of the run that saved
# them; they are rebuilt from the current class names instead (as upstream).
CLASS_NAME_BUFFERS = ("token_prefix", "token_suffix", "token_midfix")


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model being built (and says why: the config
    key behind the mismatch)."""


@dataclass
class TrainingImages:
    """A training batch's images as ``compute_loss`` receives them, under two names that
    cannot be confused: ``pixels`` ``(B, 3, H, W)``, or ``encoded``, what the method's
    ``encode_images`` made of them already (``{"features": (B, D), ...}``: the feature
    cache, several processes). Exactly one is set."""
    pixels: Optional[torch.Tensor] = None
    encoded: Optional[dict] = None


class PromptTuningTrainer(TrainerX):
    CONFIG_NODE = None  # e.g. "COOP": the method's options are cfg.TRAINER.COOP
    processes = distributed  # the engine's collectives, over torchrun's processes

    def trained_modules(self):
        """What the method trains and saves: ``{checkpoint folder: module of the model}``,
        each registered with the run's optimizer and schedule (OPTIM) and saved as
        ``OUTPUT_DIR/<folder>/model.pth.tar-N``. CoOp's: the prompt learner. Upstream's
        deep-prompt methods register the whole model and train its prompts only
        (``is_trained``); E2MIM registers its critic besides, with an optimizer of its own."""
        return {"prompt_learner": self.model.prompt_learner}

    def is_trained(self, name):
        """Whether the model's parameter ``name`` learns (all others stay frozen): by
        default every parameter of the trained modules."""
        return any(name.startswith(prefix) for prefix in self._trained_prefixes)

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.CONFIG_NODE]

    def unfrozen_image_features(self):
        """None if this run's image features are frozen: a fixed function of the image,
        which the feature cache may store and several processes encode without gradient.
        Otherwise why not, naming the config keys (vision prompts learn, a teacher needs
        the pixels, pixels are mixed). Read after ``self.precision`` is set."""
        return None

    def check_cfg(self, cfg):
        check_choices(cfg, f"TRAINER.{self.CONFIG_NODE}.")
        self.check_context(cfg.TRAINER[self.CONFIG_NODE], f"TRAINER.{self.CONFIG_NODE}")
        check_feature_cache_cfg(cfg)
        if cfg.TRAIN.TEXT_ENCODER.CHUNK_CLASSES < 0:
            raise ConfigError(f"TRAIN.TEXT_ENCODER.CHUNK_CLASSES must be >= 0 (classes per chunk, "
                              f"0: all at once); got {cfg.TRAIN.TEXT_ENCODER.CHUNK_CLASSES}")

    def check_context(self, options, key):
        """The learned text context (``N_CTX``, or ``N_CTX_TEXT`` for the deep-prompt
        methods, or the words of ``CTX_INIT``) must leave room in CLIP's context for SOS,
        a one-token class name, the full stop and EOS (the class names are checked once
        they are known, by the prompt learner)."""
        if isinstance(options.CTX_INIT, bool) and options.CTX_INIT:
            raise ConfigError(f"{key}.CTX_INIT takes the initial words (e.g. \"a photo of a\"); "
                              "True is ProGrad's setting (its context starts from the dataset's "
                              "template): use --trainer ProGrad, or give the words")
        if options.CTX_INIT:
            words = len(options.CTX_INIT.replace("_", " ").split(" "))
            if words > CONTEXT_LENGTH - 4:
                raise ConfigError(f"{key}.CTX_INIT has {words} words; at most {CONTEXT_LENGTH - 4} "
                                  f"fit CLIP's context of {CONTEXT_LENGTH} tokens with a class name")
        else:
            length_key = "N_CTX_TEXT" if "N_CTX_TEXT" in options else "N_CTX"
            check_context_length(options[length_key], f"{key}.{length_key}")

    # ------------------------------------------------------------------ model
    def build_custom_clip(self, clip_model):
        """The method's model: a module with a ``prompt_learner`` attribute."""
        raise NotImplementedError

    def build_data_loader(self):
        super().build_data_loader()
        shard_loaders(self)  # several processes: this rank's share of each batch and set

    def build_model(self):
        cfg = self.cfg
        self.run_seed = run_seed(cfg)
        self.precision = run_precision(self.method_cfg.PREC, self.device,
                                       f"TRAINER.{self.CONFIG_NODE}.PREC")
        unfrozen = self.unfrozen_image_features()
        if cfg.TRAIN.FEATURE_CACHE.ENABLED and unfrozen:
            raise ConfigError(f"TRAIN.FEATURE_CACHE stores each image's features once, but "
                              f"{unfrozen}: set TRAIN.FEATURE_CACHE.ENABLED False")
        clip_model = load_clip_for_run(cfg, self.precision)

        print("Building custom CLIP")
        self.model = self.build_custom_clip(clip_model)
        if hasattr(self.model, "text_encoder"):
            self.model.text_encoder = text_encoder_for_run(self.model.text_encoder,
                                                           cfg.TRAIN.TEXT_ENCODER, self.num_classes)

        # Frozen means frozen: CLIP's weights get no gradient, and CLIP stays in
        # eval mode (build_model returns it so, and only the registered prompt
        # learner is switched to train mode), so BatchNorm statistics never move.
        print("Turning off gradients in both the image and the text encoder")
        trained = self.trained_modules()
        self._trained_prefixes = [f"{prefix}." if prefix else "" for prefix, module
                                  in self.model.named_modules()
                                  if any(module is wanted for wanted in trained.values())]
        for name, param in self.model.named_parameters():
            if not self.is_trained(name):
                param.requires_grad_(False)
        enabled = sorted(n for n, p in self.model.named_parameters() if p.requires_grad)
        print(f"Parameters to be updated: {enabled}")

        if cfg.MODEL.INIT_WEIGHTS:
            for module in trained.values():
                load_pretrained_weights(module, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        # Each trained module is given to an optimizer (its frozen parameters get no
        # gradient, so the optimizer leaves them alone).
        for name, module in trained.items():
            self.optim = build_optimizer(module, cfg.OPTIM)
            self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
            self.register_model(name, module, self.optim, self.sched)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "amp" else None

    # ------------------------------------------------------------------ training
    def before_train(self):
        super().before_train()  # resumes, if there is a checkpoint
        if self.cfg.TRAIN.FEATURE_CACHE.ENABLED:
            self.fill_feature_cache()

    def fill_feature_cache(self):
        """Encode augmented copies of the training images once; the training loader serves
        features (``TRAIN.FEATURE_CACHE``, feature_cache.py)."""
        copies = self.cfg.TRAIN.FEATURE_CACHE.AUGMENTATIONS
        loader = self.train_loader_x
        data_source = loader.dataset.data_source
        print(f"Feature cache: encoding {copies} augmented copies of {len(data_source)} "
              "training images once")

        def encode(pixels):
            with self.autocast():
                return self.encode_images(pixels)["features"]

        features = encode_augmentations(encode, self.cfg, data_source, loader.dataset.transform,
                                        copies, self.run_seed, self.device)
        labels = torch.tensor([item.label for item in data_source])
        self.train_loader_x = CachedFeatureLoader(loader, features, labels, self.run_seed)

    def before_epoch(self):
        super().before_epoch()
        if isinstance(self.train_loader_x, CachedFeatureLoader):
            self.train_loader_x.set_epoch(self.epoch)

    def encode_images(self, pixels):
        """What ``compute_loss`` needs of each image, as named tensors of one row per image:
        ``features`` (normalised), and whatever else a method computes from the pixels."""
        return {"features": self.model.image_features(pixels)}

    def encoded(self, images):
        """``encode_images`` of the batch's ``TrainingImages``: computed here from the pixels,
        or as the feature cache or several processes encoded them."""
        return images.encoded if images.encoded is not None else self.encode_images(images.pixels)

    def compute_loss(self, images, label):
        """The training objective as named terms: ``{"loss": total, "logits": ...}`` plus
        any term a method wants logged; ``logits`` (optional) feed the accuracy meter.
        ``images``: ``TrainingImages``. Cross-entropy of the model's logits unless a
        method says otherwise."""
        logits = self.model.predict(self.encoded(images)["features"])
        return {"loss": F.cross_entropy(logits, label), "logits": logits}

    def forward_backward(self, batch):
        images, label = self.parse_batch_train(batch)
        if world_size() > 1:
            images, label = self.global_batch(images, label)
        with self.autocast():
            terms = self.compute_loss(images, label)
        self.check_finite(terms)
        self.model_zero_grad()
        self.backward(terms)
        self.step_optimizers()

        loss_summary = {"loss": terms["loss"].item()}
        if terms.get("logits") is not None:
            loss_summary["acc"] = compute_accuracy(terms["logits"], label)[0].item()
        loss_summary.update((name, value.item()) for name, value in terms.items()
                            if name not in ("loss", "logits"))
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return loss_summary

    def global_batch(self, images, label):
        """The global batch, encoded: this rank's images encoded here (``encode_images``;
        with the gradient unless the image features are frozen), every rank's encodings
        and labels gathered in rank order (the gradient flows back to each rank's rows)."""
        encoded = images.encoded
        if encoded is None:
            frozen = self.unfrozen_image_features() is None
            with torch.no_grad() if frozen else nullcontext(), self.autocast():
                encoded = self.encode_images(images.pixels)
        return (TrainingImages(encoded={name: gather_rows(value) for name, value in encoded.items()}),
                gather_rows(label))

    def autocast(self):
        return torch.autocast("cuda") if self.precision == "amp" else nullcontext()

    def backward(self, terms):
        """Fill the learned parameters' gradients, as one process would (averaged over the
        processes): by default those of ``terms["loss"]``."""
        self.scaled(terms["loss"]).backward()
        self.average_gradients()

    def average_gradients(self, parameters=None):
        """Average the gradients of ``parameters`` (default: every registered model's) over
        the processes; nothing to do in one process."""
        if parameters is None:
            parameters = [p for name in self.get_model_names() for p in self._models[name].parameters()]
        average_gradients(parameters)

    def scaled(self, loss):
        """``loss`` as the backward should see it (scaled by the GradScaler under amp)."""
        return loss if self.scaler is None else self.scaler.scale(loss)

    def step_optimizers(self):
        """Step every registered model's optimizer. Parameters without a gradient are
        skipped by the optimizers themselves; a GradScaler refuses an optimizer with
        none at all, so under amp such an optimizer is not stepped."""
        for name in self.get_model_names():
            optim = self._optims[name]
            if optim is None:
                continue
            if self.scaler is None:
                optim.step()
            elif any(p.grad is not None for group in optim.param_groups for p in group["params"]):
                self.scaler.step(optim)
        if self.scaler is not None:
            self.scaler.update()

    def check_finite(self, terms):
        """Stop before a non-finite term touches the prompt (the loop adds where it was)."""
        values = {name: value for name, value in terms.items() if name != "logits"}
        if all(torch.isfinite(value).all() for value in values.values()):
            return
        detail = "".join(f", {name} {value.item():.4g}" for name, value in values.items()
                         if name != "loss")
        raise FloatingPointError(f"the loss is {values['loss'].item()}{detail}")

    def detect_anomaly(self, loss):  # Dassl's check before a backward, with the value
        self.check_finite({"loss": loss})

    def parse_batch_train(self, batch):
        label = batch["label"].to(self.device)
        if "features" in batch:  # TRAIN.FEATURE_CACHE
            return TrainingImages(encoded={"features": batch["features"].to(self.device)}), label
        return TrainingImages(pixels=batch["img"].to(self.device)), label

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def test(self, split=None):
        freeze = getattr(self.model, "frozen_text_features", None)
        with freeze() if freeze else nullcontext():
            return super().test(split)

    # ------------------------------------------------------------------ checkpoints
    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        # Only the trained modules are needed for inference; other registered parts
        # (E2MIM's critic) are for training and may not even fit another class list.
        for name in self.trained_modules():
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise FileNotFoundError(f'Model not found at "{model_path}"')
            checkpoint = load_checkpoint(model_path)
            if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
                raise CheckpointError(f'"{model_path}" is not a training checkpoint: it has no '
                                      '"state_dict"; use a file that train.py saved')
            state_dict = {k: v for k, v in checkpoint["state_dict"].items()
                          if not is_class_name_buffer(k)}
            check_fits(self._models[name], state_dict, model_path, self.CONFIG_NODE)
            print(f'Loading weights to {name} from "{model_path}" '
                  f'(epoch = {checkpoint["epoch"]})')
            # strict=False as upstream: other methods' unused extras (e.g. KgCoOp's
            # bias_vectors) are ignored; what this model needs was checked above.
            self._models[name].load_state_dict(state_dict, strict=False)


def check_context_length(n_ctx, key):
    most = CONTEXT_LENGTH - 4
    if not 1 <= n_ctx <= most:
        raise ConfigError(f"{key} must be between 1 and {most} (CLIP's context holds "
                          f"{CONTEXT_LENGTH} tokens with SOS, class name, '.' and EOS); got {n_ctx}")


def is_class_name_buffer(key):
    """``token_prefix`` or ``prompt_learner.token_prefix`` (a whole-model checkpoint), ..."""
    return key.rsplit(".", 1)[-1] in CLASS_NAME_BUFFERS


def check_fits(module, state_dict, path, config_node):
    """A checkpoint that does not fit the model says why, in the config's terms."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not is_class_name_buffer(k)]
    if missing:
        shown = missing if len(missing) <= 8 else missing[:8] + [f"... {len(missing) - 8} more"]
        raise CheckpointError(
            f"{path} lacks {shown}: it was saved by another method or model "
            f"(its tensors: {sorted(state_dict)[:20]}{' ...' if len(state_dict) > 20 else ''})")
    ctx_key = "ctx" if "ctx" in own else "prompt_learner.ctx"
    ctx = state_dict.get(ctx_key)
    if ctx is not None and ctx_key in own and ctx.shape != own[ctx_key].shape:
        want = own[ctx_key].shape
        key = f"TRAINER.{config_node}"
        if ctx.shape[-1] != want[-1]:
            reason = (f"its context vectors have width {ctx.shape[-1]}, this backbone's "
                      f"{want[-1]}: it was trained with another backbone (MODEL.BACKBONE.NAME)")
        elif ctx.dim() != len(want):
            kinds = {2: "one shared context", 3: "class-specific contexts"}
            reason = (f"it holds {kinds.get(ctx.dim(), ctx.dim())}, this config builds "
                      f"{kinds.get(len(want), len(want))} ({key}.CSC)")
        elif ctx.shape[-2] != want[-2]:
            reason = (f"context length: it has {ctx.shape[-2]} context vectors, this config "
                      f"builds {want[-2]} ({key}.N_CTX / {key}.CTX_INIT)")
        else:
            reason = (f"class count: it has class-specific contexts for {ctx.shape[0]} classes, "
                      f"this dataset has {want[0]} (DATASET.SUBSAMPLE_CLASSES / dataset)")
        raise CheckpointError(f"{path} does not fit this model: {reason}")
    for key, value in state_dict.items():
        if key in own and value.shape != own[key].shape:
            raise CheckpointError(f"{path} does not fit this model: {key} has shape "
                               f"{tuple(value.shape)} there and {tuple(own[key].shape)} here")
