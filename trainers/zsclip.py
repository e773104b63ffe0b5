"""Zero-shot CLIP: class text features of hand-crafted prompts, no training.

``ZeroshotCLIP`` uses the dataset's template; ``ZeroshotCLIP2`` averages the
features of CLIP's 7 selected ImageNet templates plus the dataset's own.
"""
from dassl.engine import TRAINER_REGISTRY, TrainerX

from .clip_prompting import (
    hand_crafted_text_features,
    load_clip_for_run,
    normalize,
    run_precision,
)
from .templates import ensemble_templates, fill_template, template_for


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(TrainerX):
    def templates(self):
        return [template_for(self.cfg.DATASET)]

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        # Released precision (fp16) on the GPU, as upstream; fp32 elsewhere.
        precision = run_precision("fp16", self.device, "zero-shot CLIP precision")
        clip_model = load_clip_for_run(cfg, precision).to(self.device)
        for param in clip_model.parameters():
            param.requires_grad_(False)

        templates = self.templates()
        if len(templates) == 1:
            print(f"Prompts: {fill_template(templates[0], classnames)}")
        else:
            print(f"Prompt ensembling (n={len(templates)})")
        self.text_features = hand_crafted_text_features(clip_model, classnames, templates,
                                                        self.device)
        self.clip_model = clip_model

    def model_inference(self, image):
        image_features = normalize(self.clip_model.encode_image(image))
        return self.clip_model.logit_scale.exp() * image_features @ self.text_features.t()


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling (the dataset template is not added twice on ImageNet)."""

    def templates(self):
        return ensemble_templates(self.cfg.DATASET)
