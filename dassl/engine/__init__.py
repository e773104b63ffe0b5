from .build import TRAINER_REGISTRY, build_trainer  # noqa: F401
from .trainer import SimpleTrainer, TrainerBase, TrainerX  # noqa: F401
