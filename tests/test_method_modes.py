"""Every registered method keeps its declaration of frozen image features
(``unfrozen_image_features``), which the feature cache and several processes rely on:
where it says frozen, one step on features encoded without gradient (what the cache and
other processes hand ``compute_loss``) gives the loss and every gradient of one step on
the pixels; where it says not, the feature cache is refused at start with one line naming
the keys. (Several processes against one: tests/test_distributed.py.)"""
import pytest
import torch

import train  # noqa: F401  (registers the trainers)
from dassl.engine import TRAINER_REGISTRY
from datasets.errors import ConfigError
from tests.helpers import make_trainer, step_terms_and_gradients
from trainers.prompt_trainer import PromptTuningTrainer, TrainingImages

DEEP = {"IVLP": ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2"],
        "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "2"],
        "PromptSRC": ["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                      "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2"]}
# (method, options, frozen): every registered prompt-tuning method, and the settings that
# change its answer.
CASES = [
    ("CoOp", [], True),
    ("CoCoOp", [], True),
    ("KgCoOp", [], True),
    ("ProGrad", [], True),  # fp32 (the CPU's precision): the teacher shares the encoding
    ("E2MIM", [], True),
    ("E2MIM", ["TRAINER.E2MIM.MIXUP_LEVEL", "image"], False),
    ("IVLP", DEEP["IVLP"], False),
    ("IVLP", ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "0", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2"], True),
    ("MaPLe", DEEP["MaPLe"], False),
    ("PromptSRC", DEEP["PromptSRC"], False),
]


def test_every_registered_prompt_tuning_method_is_covered():
    registered = {name for name in TRAINER_REGISTRY.registered_names()
                  if issubclass(TRAINER_REGISTRY.get(name), PromptTuningTrainer)}
    assert registered == {name for name, _, _ in CASES}


@pytest.mark.parametrize("name, opts, frozen", CASES,
                         ids=[f"{name}{'-' + opts[1] if opts else ''}" for name, opts, _ in CASES])
def test_the_declaration_holds_and_the_feature_cache_follows_it(tiny_clip, fake_caltech, name,
                                                                opts, frozen):
    trainer = make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], *opts)
    assert (trainer.unfrozen_image_features() is None) == frozen
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    label = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        encoded = trainer.encode_images(pixels)
    expected_terms, expected_grads = step_terms_and_gradients(trainer, TrainingImages(pixels=pixels), label)
    if not frozen:
        if "image" not in opts:  # (image-level Mixup needs the pixels themselves)
            # The declaration is needed: without the gradient of the encoding, one step differs.
            _, grads = step_terms_and_gradients(trainer, TrainingImages(encoded=encoded), label)
            assert any(key not in grads or not torch.equal(grads[key], value)
                       for key, value in expected_grads.items())
        with pytest.raises(ConfigError) as refused:
            make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], *opts,
                         "TRAIN.FEATURE_CACHE.ENABLED", "True")
        message = str(refused.value)
        assert "\n" not in message and message.startswith("TRAIN.FEATURE_CACHE")
        assert "ENABLED False" in message and "TRAINER." in message
        return

    terms, grads = step_terms_and_gradients(trainer, TrainingImages(encoded=encoded), label)
    assert terms.keys() == expected_terms.keys()
    for key in terms:
        torch.testing.assert_close(terms[key], expected_terms[key], rtol=0, atol=0)
    assert grads.keys() == expected_grads.keys() and grads
    for key in grads:
        torch.testing.assert_close(grads[key], expected_grads[key], rtol=0, atol=0)
    # ... and the cache is accepted.
    make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], *opts, "TRAIN.FEATURE_CACHE.ENABLED", "True")
