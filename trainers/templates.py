"""Hand-crafted prompt templates: the per-dataset table and CLIP's ImageNet ensembles.

``{}`` is replaced by the cleaned class name (underscores become spaces).
"""
from datasets.errors import ConfigError

# CoOp's per-dataset table (``CUSTOM_TEMPLATES`` in its zsclip.py), keyed by DATASET.NAME.
CUSTOM_TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
    "SynthWorld": "a photo of a {}.",  # the embedded benchmark (not in CoOp's table)
}

# Upstream KgCoOp keeps its own copy of the table that differs in one entry;
# its hand-crafted anchor features (and so its published numbers) use it.
KGCOOP_TEMPLATES = {**CUSTOM_TEMPLATES, "DescribableTextures": "a photo of a {}, a type of texture."}

# Upstream ProGrad's copy of the table: five entries reordered so that each ends with
# words that can start a prompt ("a type of pet, a photo of a {}."). ProGrad starts
# its context from the template without " {}." and its zero-shot teacher uses it.
PROGRAD_TEMPLATES = {
    **CUSTOM_TEMPLATES,
    "OxfordPets": "a type of pet, a photo of a {}.",
    "OxfordFlowers": "a type of flower, a photo of a {}.",
    "FGVCAircraft": "a type of aircraft, a photo of a {}.",
    "DescribableTextures": "a texture of {}.",
    "Food101": "a type of food, a photo of {}.",
}

# The 80 templates of CLIP's ImageNet prompt-engineering notebook (OpenAI,
# MIT licence), in the notebook's order; data, copied as published.
IMAGENET_TEMPLATES = [
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'a photo of a {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
    'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.',
    'a plushie {}.',
    'a photo of the nice {}.',
    'a photo of the small {}.',
    'a photo of the weird {}.',
    'the cartoon {}.',
    'art of the {}.',
    'a drawing of the {}.',
    'a photo of the large {}.',
    'a black and white photo of a {}.',
    'the plushie {}.',
    'a dark photo of a {}.',
    'itap of a {}.',
    'graffiti of the {}.',
    'a toy {}.',
    'itap of my {}.',
    'a photo of a cool {}.',
    'a photo of a small {}.',
    'a tattoo of the {}.',
]

# The notebook's 7-template subset, in its order (used by ZeroshotCLIP2).
IMAGENET_TEMPLATES_SELECT = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def clean_classname(name):
    return name.replace("_", " ")


def _table_template(dataset_name, table):
    try:
        return table[dataset_name]
    except KeyError:
        raise ConfigError(
            f"no hand-crafted prompt template for dataset {dataset_name!r}; add one to "
            f"trainers/templates.py (datasets with one: {', '.join(sorted(table))})"
        ) from None


def template_for(dataset_cfg, table=CUSTOM_TEMPLATES):
    """The hand-crafted template of a run's dataset (``cfg.DATASET``), the one way to it:
    ImageFolder's is a key (DATASET.IMAGEFOLDER.TEMPLATE); a benchmark's is in ``table``
    (a method's own table, e.g. PROGRAD_TEMPLATES); a clear error for a dataset without one."""
    if dataset_cfg.NAME == "ImageFolder":
        return dataset_cfg.IMAGEFOLDER.TEMPLATE
    return _table_template(dataset_cfg.NAME, table)


def fill_template(template, classnames):
    return [template.format(clean_classname(name)) for name in classnames]


def ensemble_templates(dataset_cfg):
    """CLIP's 7 selected ImageNet templates plus the dataset's own (not twice on ImageNet)."""
    templates = list(IMAGENET_TEMPLATES_SELECT)
    if dataset_cfg.NAME != "ImageNet":
        templates.append(template_for(dataset_cfg))
    return templates
