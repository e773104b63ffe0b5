"""Prompt-tuning methods, each registered in Dassl's TRAINER_REGISTRY on import."""
