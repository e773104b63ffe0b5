"""Prompt-tuning methods for CLIP, registered in Dassl's TRAINER_REGISTRY on import."""
from . import cocoop, coop, e2mim, ivlp, kgcoop, maple, prograd, promptsrc, zsclip  # noqa: F401
