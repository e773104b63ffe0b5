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
