"""Config keys that CoOp-family code adds on top of Dassl's defaults.

``default_cfg`` is Dassl's defaults with ``extend_cfg`` applied, before any config
file is merged (as CoOp's train.py does), so every method's keys exist whichever
method a file configures; every program and tool starts from it.
A new method adds its block here and reads it as ``cfg.TRAINER.<NAME>``.

A key with a fixed set of values declares them beside its default, with
``choice`` (datasets/config.py, which also adds the ``DATASET.*`` keys);
any other value is refused before any work.
"""
from yacs.config import CfgNode as CN

from dassl.config import get_cfg_default
from datasets.config import choice, extend_dataset_cfg

PRECISIONS = ("fp16", "fp32", "amp")  # fp16 and amp need CUDA (fp32 elsewhere, with a note)
CLASS_TOKEN_POSITIONS = ("end", "middle", "front")
E2MIM_VIEWS = ("probabilities", "text_features")
ESTIMATORS = ("jsd", "dv", "infonce")  # E2MIM's mutual-information bounds
CRITICS = ("mlp", "bilinear")


def default_cfg():
    """A fresh config of every key a run has: Dassl's defaults and this project's."""
    cfg = get_cfg_default()
    extend_cfg(cfg)
    return cfg


def extend_cfg(cfg):
    extend_dataset_cfg(cfg)

    # Opt-in cache of frozen image features for training (trainers/feature_cache.py):
    # AUGMENTATIONS augmented copies per training image are encoded once; each epoch uses
    # one of them per image. Off by default: it changes the augmentation.
    cfg.TRAIN.FEATURE_CACHE = CN()
    cfg.TRAIN.FEATURE_CACHE.ENABLED = False
    cfg.TRAIN.FEATURE_CACHE.AUGMENTATIONS = 10

    # Memory of the class prompts' text encoding (trainers/clip_prompting.py,
    # ClassChunkedTextEncoder): CHUNK_CLASSES classes at a time (0: all at once), each
    # chunk under activation checkpointing with CHECKPOINT True, so that a step holds one
    # chunk's text activations instead of every class's. Same loss and gradients; off
    # (0, False) is the plain encoder.
    cfg.TRAIN.TEXT_ENCODER = CN()
    cfg.TRAIN.TEXT_ENCODER.CHUNK_CLASSES = 0
    cfg.TRAIN.TEXT_ENCODER.CHECKPOINT = False

    # CoOp (Zhou et al., IJCV 2022): upstream keys and defaults.
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16  # number of context vectors
    cfg.TRAINER.COOP.CSC = False  # class-specific context
    # Initialisation words ("" or None: random). None, not "", so that ProGrad's
    # published files, which share this node and set CTX_INIT: True, merge (yacs lets
    # a None default take any type); CoOp refuses True (prompt_trainer.py,
    # check_context).
    cfg.TRAINER.COOP.CTX_INIT = None
    choice(cfg, "TRAINER.COOP.PREC", "fp16", PRECISIONS)
    choice(cfg, "TRAINER.COOP.CLASS_TOKEN_POSITION", "end", CLASS_TOKEN_POSITIONS)

    # CoCoOp (Zhou et al., CVPR 2022): upstream keys and defaults.
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    choice(cfg, "TRAINER.COCOOP.PREC", "fp16", PRECISIONS)

    # KgCoOp (Yao et al., CVPR 2023). Upstream reuses TRAINER.COOP with a boolean
    # CTX_INIT (True meaning "a photo of a"), which clashes with CoOp's words;
    # here it has its own node, and CTX_INIT takes words as in CoOp.
    cfg.TRAINER.KGCOOP = CN()
    cfg.TRAINER.KGCOOP.N_CTX = 16
    cfg.TRAINER.KGCOOP.CSC = False
    cfg.TRAINER.KGCOOP.CTX_INIT = ""
    cfg.TRAINER.KGCOOP.W = 8.0  # weight of the knowledge-guidance term (published: 8.0)
    choice(cfg, "TRAINER.KGCOOP.PREC", "fp16", PRECISIONS)

    # ProGrad (Zhu et al., ICCV 2023): upstream reads TRAINER.COOP (N_CTX, CSC,
    # CLASS_TOKEN_POSITION, PREC; CTX_INIT True = start from the dataset's template)
    # and this LOSS node of its Dassl fork, so that its published files merge unchanged.
    cfg.LOSS = CN()
    choice(cfg, "LOSS.NAME", "", ("", "prograd"))  # ProGrad needs "prograd", as upstream
    cfg.LOSS.T = 1.0  # temperature of the distillation term
    cfg.LOSS.LAMBDA = 1.0  # how much of a conflicting component is removed (published 1.0)

    # E2MIM (Zhang, arXiv 2410.03189): keys and defaults of docs/E2MIM.md, chosen on the
    # demo world's validation split (docs/E2MIM_STUDY.md).
    cfg.TRAINER.E2MIM = CN()
    cfg.TRAINER.E2MIM.N_CTX = 4  # context vectors (set by CTX_INIT's word count when given)
    cfg.TRAINER.E2MIM.CTX_INIT = "a photo of a"  # "" = random N(0, 0.02)
    choice(cfg, "TRAINER.E2MIM.CLASS_TOKEN_POSITION", "end", CLASS_TOKEN_POSITIONS)
    choice(cfg, "TRAINER.E2MIM.PREC", "fp16", PRECISIONS)
    # The hand-crafted view: the dataset's template, or CLIP's ensemble of templates.
    choice(cfg, "TRAINER.E2MIM.TEMPLATES", "ensemble", ("dataset", "ensemble"))
    cfg.TRAINER.E2MIM.MIXUP_ALPHA = 1.0  # lambda ~ Beta(alpha, alpha)
    cfg.TRAINER.E2MIM.MIXUP_PROB = 0.0  # probability that a batch is mixed (0: Mixup off)
    choice(cfg, "TRAINER.E2MIM.MIXUP_LEVEL", "feature", ("feature", "image"))
    cfg.TRAINER.E2MIM.W_MIX = 0.1  # weight of the soft-target loss on mixed samples
    cfg.TRAINER.E2MIM.W_MI = 0.3  # weight of -I(view_soft; view_hand)
    # What the two text views are for the MI: each image's class probabilities under
    # either view ("probabilities"), or the classes' text features ("text_features").
    choice(cfg, "TRAINER.E2MIM.VIEWS", "text_features", E2MIM_VIEWS)
    # Whether the mixed samples enter the MI as dual views too: their class probabilities,
    # or (text_features) their two classes' text features mixed with their weight.
    cfg.TRAINER.E2MIM.MIX_VIEWS = True
    choice(cfg, "TRAINER.E2MIM.ESTIMATOR", "infonce", ESTIMATORS)
    choice(cfg, "TRAINER.E2MIM.CRITIC", "bilinear", CRITICS)
    cfg.TRAINER.E2MIM.CRITIC_HIDDEN = 512
    cfg.TRAINER.E2MIM.CRITIC_LAYERS = 1
    # The critic's own optimiser, at a constant learning rate (no warm-up, not the
    # prompt's schedule).
    choice(cfg, "TRAINER.E2MIM.CRITIC_OPTIM", "adam", ("adam", "sgd"))
    cfg.TRAINER.E2MIM.CRITIC_LR = 1e-2
    cfg.TRAINER.E2MIM.CRITIC_LR_MULT = 0.0  # deprecated: > 0 sets CRITIC_LR = OPTIM.LR x this
    cfg.TRAINER.E2MIM.MINE_EMA = 0.01  # moving-average rate of the dv estimator
    cfg.TRAINER.E2MIM.TEMPERATURE = 1.0  # softmax temperature of the two views
    # Predict with the soft view, or (1 - ENSEMBLE_WEIGHT) * z_soft + weight * z_hand.
    choice(cfg, "TRAINER.E2MIM.INFERENCE", "soft", ("soft", "ensemble"))
    cfg.TRAINER.E2MIM.ENSEMBLE_WEIGHT = 0.5  # beta of the ensemble rule

    # Deep-prompt methods (docs/DEEP_PROMPTS.md): upstream nodes, keys and defaults.
    # MaPLe (Khattak et al., CVPR 2023): multi-modal prompts, vision ones coupled to text.
    cfg.TRAINER.MAPLE = CN()
    cfg.TRAINER.MAPLE.N_CTX = 2  # context tokens per layer (both towers)
    cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"  # its first N_CTX tokens initialise ctx (N_CTX <= 4)
    choice(cfg, "TRAINER.MAPLE.PREC", "fp16", PRECISIONS)
    cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9  # J: prompts at the input of layers 0..J-1 (1 = shallow)

    # IVLP (independent vision-language prompting, baseline of MaPLe and PromptSRC).
    cfg.TRAINER.IVLP = CN()
    cfg.TRAINER.IVLP.N_CTX_VISION = 2  # vision prompt tokens per layer
    cfg.TRAINER.IVLP.N_CTX_TEXT = 2  # text context tokens per layer
    cfg.TRAINER.IVLP.CTX_INIT = "a photo of a"  # text only; used when N_CTX_TEXT <= 4
    choice(cfg, "TRAINER.IVLP.PREC", "fp16", PRECISIONS)
    cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9  # 0: no vision prompts
    cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9  # at least 1

    # PromptSRC (Khattak et al., ICCV 2023): IVLP's prompts, self-regulated.
    cfg.TRAINER.PROMPTSRC = CN()
    cfg.TRAINER.PROMPTSRC.N_CTX_VISION = 4
    cfg.TRAINER.PROMPTSRC.N_CTX_TEXT = 4
    cfg.TRAINER.PROMPTSRC.CTX_INIT = "a photo of a"
    choice(cfg, "TRAINER.PROMPTSRC.PREC", "fp16", PRECISIONS)
    cfg.TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION = 9
    cfg.TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT = 9
    cfg.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT = 25  # L1 to the frozen CLIP's text features
    cfg.TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT = 10  # L1 to the frozen CLIP's image features
    cfg.TRAINER.PROMPTSRC.GPA_MEAN = 15  # Gaussian prompt aggregation over epochs 1..MAX_EPOCH
    cfg.TRAINER.PROMPTSRC.GPA_STD = 1
