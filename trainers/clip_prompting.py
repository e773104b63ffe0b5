"""CLIP pieces every prompt-tuning method shares.

Loading CLIP for a config, the run's numeric precision, the text encoder over
prompt embeddings, the class-agnostic prompt learner (CoOp's), frozen CLIP with
learned prompts, and hand-crafted text features. Module and attribute names are
CoOp's, so checkpoints move between this code and upstream's.
"""
import os.path as osp
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from clip import clip
from clip.clip import CONTEXT_LENGTH
from clip.simple_tokenizer import SimpleTokenizer
from datasets.errors import ConfigError

from .defaults import CLASS_TOKEN_POSITIONS
from .distributed import all_gather_classes, class_shard, world_size
from .templates import clean_classname, fill_template

_tokenizer = SimpleTokenizer()


def resolve_backbone(name):
    """The checkpoint file for MODEL.BACKBONE.NAME: a release name (downloaded once into
    ~/.cache/clip and verified), a model shipped in clip/weights/, or the path of a
    local checkpoint file."""
    if name not in clip.available_models() and not osp.isfile(name):
        raise ConfigError(
            f"unknown CLIP backbone {name!r} (MODEL.BACKBONE.NAME); valid names: "
            f"{', '.join(clip.available_models())}, or the path of a CLIP checkpoint file")
    return clip.model_file(name)


def load_clip_to_cpu(cfg):
    """CLIP in the precision of its release (fp16 weights), on the CPU, in eval mode."""
    return clip.build_model(clip.read_state_dict(resolve_backbone(cfg.MODEL.BACKBONE.NAME)))


def run_precision(prec, device, key):
    """The precision a run uses: fp16 and amp need CUDA; elsewhere fp32, with a note.
    (``prec`` is one of trainers.defaults.PRECISIONS, checked with the config.)"""
    if prec != "fp32" and device.type != "cuda":
        print(f"Note: {key} = {prec} needs a CUDA device; running in fp32 on {device.type}")
        return "fp32"
    return prec


def load_clip_for_run(cfg, precision):
    """CLIP for this run: loaded, in the run's precision (the released weights are fp16;
    fp32 and amp runs keep a float32 copy), its input size checked against the config."""
    print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
    clip_model = load_clip_to_cpu(cfg)
    if precision in ("fp32", "amp"):
        clip_model.float()
    check_input_size(cfg, clip_model.visual.input_resolution)
    return clip_model


def check_input_size(cfg, resolution):
    """CLIP takes square images of one resolution; INPUT.SIZE must be that."""
    if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
        raise ConfigError(
            f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not fit backbone "
            f"{cfg.MODEL.BACKBONE.NAME}, which takes {resolution}x{resolution} images; set "
            f"INPUT.SIZE ({resolution}, {resolution})")


def replace_text_context(x, prompt):
    """``x`` (L, N, width): tokens 1..n_ctx (after SOS) become ``prompt`` (n_ctx, width)."""
    n_ctx = prompt.shape[0]
    context = prompt.unsqueeze(1).expand(-1, x.shape[1], -1)
    return torch.cat([x[:1], context, x[1 + n_ctx:]], dim=0)


def run_blocks(transformer, x, layer_prompts, replace):
    """OpenAI's blocks one by one, ``replace(x, prompt)`` at the input of each layer
    that has a prompt (``layer_prompts[i]``, None or missing: none)."""
    for index, block in enumerate(transformer.resblocks):
        prompt = layer_prompts[index] if index < len(layer_prompts) else None
        if prompt is not None:
            x = replace(x, prompt)
        x = block(x)
    return x


class TextEncoder(nn.Module):
    """CLIP's text transformer applied to token embeddings rather than token ids."""

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype
        # id(tokenized prompts) -> (them, their end-of-text positions, the longest + 1)
        self._eot = {}

    def end_of_text(self, tokenized_prompts):
        """Each prompt's end-of-text position (its largest token id) and the context
        length that holds them all; computed once per tokenized-prompt tensor (the
        prompts are fixed: no per-step argmax, and on a GPU no per-step sync)."""
        cached = self._eot.get(id(tokenized_prompts))
        if cached is None or cached[0] is not tokenized_prompts:
            if len(self._eot) > 64:  # a few tensors (class chunks) are ever in use
                self._eot.clear()
            eot = tokenized_prompts.argmax(dim=-1)
            cached = self._eot[id(tokenized_prompts)] = (tokenized_prompts, eot, int(eot.max()) + 1)
        return cached[1:]

    def forward(self, prompts, tokenized_prompts, layer_prompts=()):
        """``layer_prompts``: deep prompts, one per layer (None: none at that layer), which
        replace the context tokens at the layer's input (trainers/deep_prompts.py)."""
        # The feature of a text is the one at its end-of-text token. The attention
        # mask is causal, so positions after the last end-of-text token cannot
        # change it: encode only up to there (about 77/10 of the work). Deep prompts
        # sit before it (positions 1..n_ctx), so this holds for them too.
        eot, length = self.end_of_text(tokenized_prompts)
        x = prompts[..., :length, :] + self.positional_embedding[:length].type(self.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND
        if any(prompt is not None for prompt in layer_prompts):
            x = run_blocks(self.transformer, x, layer_prompts, replace_text_context)
        else:
            x = self.transformer(x)
        x = x.permute(1, 0, 2)  # LND -> NLD
        x = self.ln_final(x).type(self.dtype)
        return x[torch.arange(x.shape[0]), eot] @ self.text_projection


class ClassChunkedTextEncoder(nn.Module):
    """A text encoder applied to the class prompts in pieces (``TRAIN.TEXT_ENCODER``):
    this process's share of the classes (all of them in a single-process run),
    ``chunk`` classes at a time, each chunk under activation checkpointing
    (``checkpoint``), so that the backward recomputes one chunk's activations at a time
    instead of holding those of every class. With several processes the shares'
    features are gathered, with their gradient. Same features and gradients as the
    encoder it wraps; further arguments (deep prompts) go to it unchanged. Its state-dict
    keys are the wrapped encoder's (a whole-model checkpoint keeps upstream's keys, and
    loads in a run with another process count or TRAIN.TEXT_ENCODER)."""

    def __init__(self, encoder, chunk=0, checkpoint=False):
        super().__init__()
        self.encoder = encoder
        self.chunk = chunk
        self.checkpoint = checkpoint
        self._pieces = None  # (tokenized prompts, [(start, stop, their tokens), ...])
        self.register_state_dict_post_hook(_unwrapped_keys)
        self.register_load_state_dict_pre_hook(_wrapped_keys)

    def pieces(self, tokenized_prompts):
        """This process's classes in chunks, computed once per tokenized-prompt tensor
        (each chunk's token tensor stays the same object: its end-of-text positions
        are computed once too)."""
        if self._pieces is None or self._pieces[0] is not tokenized_prompts:
            start, stop = class_shard(len(tokenized_prompts))
            step = self.chunk or max(stop - start, 1)
            self._pieces = (tokenized_prompts, [
                (i, min(i + step, stop), tokenized_prompts[i:min(i + step, stop)])
                for i in range(start, stop, step)])
        return self._pieces[1]

    def forward(self, prompts, tokenized_prompts, *extra):
        pieces = self.pieces(tokenized_prompts)
        # One split (its backward concatenates the chunks' gradients once), not a slice
        # per chunk (each slice's backward would fill a gradient of all the prompts).
        chunks = prompts[pieces[0][0]:pieces[-1][1]].split([stop - start for start, stop, _ in pieces])
        features = []
        for chunk, (_, _, tokens) in zip(chunks, pieces):
            if self.checkpoint and torch.is_grad_enabled():
                features.append(checkpoint(self.encoder, chunk, tokens, *extra, use_reentrant=False))
            else:
                features.append(self.encoder(chunk, tokens, *extra))
        features = features[0] if len(features) == 1 else torch.cat(features)
        return all_gather_classes(features, len(tokenized_prompts))


def _unwrapped_keys(module, state_dict, prefix, local_metadata):
    wrapped = prefix + "encoder."
    for key in [k for k in state_dict if k.startswith(wrapped)]:
        state_dict[prefix + key[len(wrapped):]] = state_dict.pop(key)


def _wrapped_keys(module, state_dict, prefix, *args):
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + "encoder.")]:
        state_dict[prefix + "encoder." + key[len(prefix):]] = state_dict.pop(key)


def text_encoder_for_run(encoder, options, n_classes):
    """``encoder`` as ``TRAIN.TEXT_ENCODER`` (``options``) and the process count ask:
    unchanged when neither chunks, checkpoints nor shards the classes."""
    if not options.CHUNK_CLASSES and not options.CHECKPOINT and world_size() == 1:
        return encoder
    if n_classes < world_size():
        raise ConfigError(f"{world_size()} processes share the classes' text encoding, but there "
                          f"are only {n_classes} classes: use at most {n_classes} processes")
    return ClassChunkedTextEncoder(encoder, options.CHUNK_CLASSES, options.CHECKPOINT)


def normalize(features):
    return features / features.norm(dim=-1, keepdim=True)


@torch.no_grad()
def encode_texts(clip_model, texts, device):
    """Normalised CLIP text features of ``texts``, one row per text (encoded up to the
    longest end-of-text token: the mask is causal, the rest cannot change them)."""
    return normalize(clip_model.encode_text(tokenize_to_last_eot(texts).to(device)))


def tokenize_to_last_eot(texts):
    """Token ids cut after the longest text's end-of-text token (the rest is padding)."""
    tokens = clip.tokenize(texts)
    return tokens[:, :int(tokens.argmax(dim=-1).max()) + 1]


@torch.no_grad()
def hand_crafted_text_features(clip_model, classnames, templates, device):
    """Class text features of hand-crafted prompts: one template's normalised features,
    or for several the mean of each template's normalised features, re-normalised
    (CLIP's prompt ensembling)."""
    if len(templates) == 1:
        return encode_texts(clip_model, fill_template(templates[0], classnames), device)
    # Summed template by template in list order, as upstream's ZeroshotCLIP2:
    # the order of a floating-point sum decides its last bits.
    total = 0
    for template in templates:
        total = total + encode_texts(clip_model, fill_template(template, classnames), device)
    return normalize(total / len(templates))


def tokenize_prompts(texts):
    """``clip.tokenize(texts)``; a prompt too long for CLIP's context is refused by name
    (its length is only counted then: the happy path tokenizes once)."""
    try:
        return clip.tokenize(texts, context_length=CONTEXT_LENGTH)
    except RuntimeError:
        text = max(texts, key=lambda candidate: len(_tokenizer.encode(candidate)))
        tokens = len(_tokenizer.encode(text)) + 2  # + SOS and EOS
        raise ConfigError(f"the prompt {text!r} takes {tokens} tokens; CLIP's context holds "
                          f"{CONTEXT_LENGTH}: use a shorter context (N_CTX, CTX_INIT)") from None


class PromptLearner(nn.Module):
    """CoOp's learnable context: ``[SOS] ctx_1 … ctx_M classname . [EOS]`` for every class.

    ``ctx`` is one context shared by all classes, or one per class (``csc``);
    ``token_prefix`` / ``token_suffix`` hold the fixed embeddings around it
    (saved with checkpoints, ignored when loading, as upstream).
    """

    def __init__(self, classnames, clip_model, n_ctx, ctx_init="", csc=False,
                 class_token_position="end", n_ctx_from_words=True):
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ConfigError(f"CLASS_TOKEN_POSITION must be one of {CLASS_TOKEN_POSITIONS}; "
                             f"got {class_token_position!r}")
        n_cls = len(classnames)
        dtype = clip_model.dtype
        ctx_dim = clip_model.ln_final.weight.shape[0]

        if ctx_init:
            ctx_init = ctx_init.replace("_", " ")
            # Upstream quirk kept: the context length is the number of words, so
            # an initialisation whose words split into several BPE tokens keeps
            # only the first tokens (and the rest become part of the suffix).
            # The deep-prompt methods keep N_CTX instead (n_ctx_from_words=False):
            # the first N_CTX tokens of the words are learned, the rest stay words.
            if n_ctx_from_words:
                n_ctx = len(ctx_init.split(" "))
            with torch.no_grad():
                embedding = clip_model.token_embedding(tokenize_prompts([ctx_init])).type(dtype)
            ctx_vectors = embedding[0, 1:1 + n_ctx, :]
            prompt_prefix = ctx_init
        else:
            if csc:
                print("Initializing class-specific contexts")
                ctx_vectors = torch.empty(n_cls, n_ctx, ctx_dim, dtype=dtype)
            else:
                print("Initializing a generic context")
                ctx_vectors = torch.empty(n_ctx, ctx_dim, dtype=dtype)
            nn.init.normal_(ctx_vectors, std=0.02)
            prompt_prefix = " ".join(["X"] * n_ctx)
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}")
        self.ctx = nn.Parameter(ctx_vectors)

        names = [clean_classname(name) for name in classnames]
        tokenized_prompts = tokenize_prompts([f"{prompt_prefix} {name}." for name in names])
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized_prompts).type(dtype)
        self.register_buffer("token_prefix", embedding[:, :1, :])  # SOS
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])  # class, '.', EOS
        self.register_buffer("tokenized_prompts", tokenized_prompts, persistent=False)

        self.n_cls = n_cls
        self.n_ctx = n_ctx
        self.name_lens = [len(_tokenizer.encode(name)) for name in names]
        self.class_token_position = class_token_position

    def assemble(self, ctx):
        """Prompt embeddings with ``ctx`` (shape ``(..., n_cls, n_ctx, dim)``) after SOS."""
        lead = ctx.shape[:-2]
        prefix = self.token_prefix.expand(*lead, -1, -1)
        suffix = self.token_suffix.expand(*lead, -1, -1)
        return torch.cat([prefix, ctx, suffix], dim=-2)

    def forward(self):
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        if self.class_token_position == "end":
            return self.assemble(ctx)
        prompts = []
        for i, name_len in enumerate(self.name_lens):
            prefix = self.token_prefix[i:i + 1]
            class_tokens = self.token_suffix[i:i + 1, :name_len]
            suffix = self.token_suffix[i:i + 1, name_len:]
            ctx_i = ctx[i:i + 1]
            if self.class_token_position == "middle":
                half = self.n_ctx // 2
                parts = [prefix, ctx_i[:, :half], class_tokens, ctx_i[:, half:], suffix]
            else:  # front
                parts = [prefix, class_tokens, ctx_i, suffix]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)


class PromptedCLIP(nn.Module):
    """Frozen CLIP classifying with the text features of learned class prompts.

    Methods that also use the hand-crafted prompts' features (KgCoOp, E2MIM) pass
    them once, as ``hand_crafted_text_features`` (a buffer: never trained or saved
    with the prompt learner).
    """

    def __init__(self, clip_model, prompt_learner, hand_crafted_text_features=None):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype
        self._frozen_text_features = None
        if hand_crafted_text_features is not None:
            self.register_buffer("hand_crafted_text_features", hand_crafted_text_features)

    def image_features(self, image):
        """Normalised features of the pixels ``image`` (B, 3, H, W)."""
        return normalize(self.image_encoder(image.type(self.dtype)))

    def text_features(self):
        prompts = self.prompt_learner()
        return normalize(self.text_encoder(prompts, self.prompt_learner.tokenized_prompts))

    def logits(self, image_features, text_features):
        return self.logit_scale.exp() * image_features @ text_features.t()

    def forward(self, image):
        return self.predict(self.image_features(image))

    def predict(self, image_features):
        """Logits of images given their (normalised) features."""
        text_features = self._frozen_text_features
        if text_features is None:
            text_features = self.text_features()
        return self.classify(image_features, text_features)

    def classify(self, image_features, text_features):
        """The prediction rule: logits of the learned prompts (a method may combine views)."""
        return self.logits(image_features, text_features)

    @contextmanager
    def frozen_text_features(self):
        """During an evaluation the prompts do not change: encode them once, not per batch."""
        with torch.no_grad():
            self._frozen_text_features = self.text_features()
        try:
            yield
        finally:
            self._frozen_text_features = None
