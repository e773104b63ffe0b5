"""Config keys that CoOp-family code adds on top of Dassl's defaults.

``extend_cfg`` runs before any config file is merged (as in CoOp's train.py),
so every method's keys exist whichever method a file configures. A new method
adds its block here and reads it as ``cfg.TRAINER.<NAME>``.
"""
from yacs.config import CfgNode as CN


def extend_cfg(cfg):
    # Base-to-new protocol: keep all classes, the first half ("base") or the
    # second half ("new") of the labels, relabelled from 0.
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"

    # Opt-in cache of frozen image features for training (trainers/feature_cache.py):
    # VIEWS augmented views per training image are encoded once; each epoch uses
    # one of them per image. Off by default: it changes the augmentation.
    cfg.TRAIN.FEATURE_CACHE = CN()
    cfg.TRAIN.FEATURE_CACHE.ENABLED = False
    cfg.TRAIN.FEATURE_CACHE.VIEWS = 10

    # SynthWorld, the embedded benchmark (datasets/synthworld.py): generated once
    # under DATASET.ROOT/synthworld with these settings.
    cfg.DATASET.SYNTHWORLD = CN()
    cfg.DATASET.SYNTHWORLD.SEED = 2024  # the world's own seed (not the run's)
    cfg.DATASET.SYNTHWORLD.N_COLOURS = 10  # classes = colours x shapes, colour-major
    cfg.DATASET.SYNTHWORLD.N_SHAPES = 10
    cfg.DATASET.SYNTHWORLD.TRAIN_PER_CLASS = 20
    cfg.DATASET.SYNTHWORLD.VAL_PER_CLASS = 4
    cfg.DATASET.SYNTHWORLD.TEST_PER_CLASS = 30
    cfg.DATASET.SYNTHWORLD.HUE_SHIFT = 30.0  # degrees: the task's domain shift from pretraining
    cfg.DATASET.SYNTHWORLD.IMAGE_SIZE = 32

    # ImageFolder, one's own images (datasets/imagefolder.py): DATASET.ROOT/<DIR>/ with
    # train/ val/ test/ class folders, or class folders split with these ratios (rest: test).
    cfg.DATASET.IMAGEFOLDER = CN()
    cfg.DATASET.IMAGEFOLDER.DIR = ""
    cfg.DATASET.IMAGEFOLDER.TEMPLATE = "a photo of a {}."  # hand-crafted prompt of every method
    cfg.DATASET.IMAGEFOLDER.TRAIN_RATIO = 0.5
    cfg.DATASET.IMAGEFOLDER.VAL_RATIO = 0.2
    cfg.DATASET.IMAGEFOLDER.SPLIT_SEED = 1  # the split's own seed: the same split for every run

    # CoOp (Zhou et al., IJCV 2022): upstream keys and defaults.
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16  # number of context vectors
    cfg.TRAINER.COOP.CSC = False  # class-specific context
    cfg.TRAINER.COOP.CTX_INIT = ""  # initialisation words
    cfg.TRAINER.COOP.PREC = "fp16"  # fp16, fp32, amp
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # 'middle' or 'end' or 'front'

    # CoCoOp (Zhou et al., CVPR 2022): upstream keys and defaults.
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    cfg.TRAINER.COCOOP.PREC = "fp16"

    # KgCoOp (Yao et al., CVPR 2023). Upstream reuses TRAINER.COOP with a boolean
    # CTX_INIT (True meaning "a photo of a"), which clashes with CoOp's words;
    # here it has its own node, and CTX_INIT takes words as in CoOp.
    cfg.TRAINER.KGCOOP = CN()
    cfg.TRAINER.KGCOOP.N_CTX = 16
    cfg.TRAINER.KGCOOP.CSC = False
    cfg.TRAINER.KGCOOP.CTX_INIT = ""
    cfg.TRAINER.KGCOOP.W = 8.0  # weight of the knowledge-guidance term (published: 8.0)
    cfg.TRAINER.KGCOOP.PREC = "fp16"

    # E2MIM (Zhang, arXiv 2410.03189): keys and defaults of docs/E2MIM.md.
    cfg.TRAINER.E2MIM = CN()
    cfg.TRAINER.E2MIM.N_CTX = 4  # context vectors (set by CTX_INIT's word count when given)
    cfg.TRAINER.E2MIM.CTX_INIT = "a photo of a"  # "" = random N(0, 0.02)
    cfg.TRAINER.E2MIM.CLASS_TOKEN_POSITION = "end"  # end / middle / front
    cfg.TRAINER.E2MIM.PREC = "fp16"  # fp16 / fp32 / amp
    cfg.TRAINER.E2MIM.TEMPLATES = "dataset"  # hand-crafted view: "dataset" or "ensemble"
    cfg.TRAINER.E2MIM.MIXUP_ALPHA = 1.0  # lambda ~ Beta(alpha, alpha)
    cfg.TRAINER.E2MIM.MIXUP_PROB = 1.0  # probability that a batch is mixed
    cfg.TRAINER.E2MIM.MIXUP_LEVEL = "feature"  # "feature" or "image"
    cfg.TRAINER.E2MIM.W_MIX = 0.1  # weight of the soft-target loss on mixed samples
    cfg.TRAINER.E2MIM.W_MI = 1.0  # weight of -I(p_soft; p_hand)
    cfg.TRAINER.E2MIM.ESTIMATOR = "jsd"  # "jsd", "dv" or "infonce"
    cfg.TRAINER.E2MIM.CRITIC = "mlp"  # "mlp" or "bilinear"
    cfg.TRAINER.E2MIM.CRITIC_HIDDEN = 512
    cfg.TRAINER.E2MIM.CRITIC_LAYERS = 1
    cfg.TRAINER.E2MIM.CRITIC_LR_MULT = 1.0  # critic LR = OPTIM.LR x this
    cfg.TRAINER.E2MIM.MINE_EMA = 0.01  # moving-average rate of the dv estimator
    cfg.TRAINER.E2MIM.TEMPERATURE = 1.0  # softmax temperature of the two views
    cfg.TRAINER.E2MIM.INFERENCE = "soft"  # "soft" or "ensemble"
    cfg.TRAINER.E2MIM.ENSEMBLE_WEIGHT = 0.5  # beta of the ensemble rule
