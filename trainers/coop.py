"""CoOp: Context Optimization (Zhou et al., "Learning to Prompt for Vision-Language
Models", IJCV 2022, arXiv 2109.01134): learned context words, cross-entropy."""
from dassl.engine import TRAINER_REGISTRY

from .clip_prompting import PromptedCLIP, PromptLearner
from .prompt_trainer import PromptTuningTrainer


@TRAINER_REGISTRY.register()
class CoOp(PromptTuningTrainer):
    CONFIG_NODE = "COOP"

    def build_custom_clip(self, clip_model):
        options = self.method_cfg
        prompt_learner = PromptLearner(
            self.dm.dataset.classnames, clip_model, n_ctx=options.N_CTX,
            ctx_init=options.CTX_INIT, csc=options.CSC,
            class_token_position=options.CLASS_TOKEN_POSITION)
        return PromptedCLIP(clip_model, prompt_learner)
