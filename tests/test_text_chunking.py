"""TRAIN.TEXT_ENCODER (ClassChunkedTextEncoder): the class prompts encoded in chunks under
activation checkpointing give the loss and the gradients of the plain encoder."""
import pytest
import torch

from tests.helpers import make_trainer, step_terms_and_gradients
from trainers.clip_prompting import ClassChunkedTextEncoder, TextEncoder
from trainers.prompt_trainer import TrainingImages

CHUNKED = ("TRAIN.TEXT_ENCODER.CHUNK_CLASSES", "3", "TRAIN.TEXT_ENCODER.CHECKPOINT", "True")


@pytest.mark.parametrize("name,features", [("CoOp", False), ("CoCoOp", False), ("KgCoOp", False),
                                           ("E2MIM", False), ("E2MIM", True)])
def test_chunked_checkpointed_text_encoding_gives_the_same_loss_and_gradients(
        tiny_clip, fake_caltech, name, features):
    plain = make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"])
    chunked = make_trainer(name, fake_caltech, tiny_clip["tiny-ViT"], *CHUNKED)
    assert isinstance(plain.model.text_encoder, TextEncoder)  # off: the plain encoder
    assert isinstance(chunked.model.text_encoder, ClassChunkedTextEncoder)
    encoder_calls = []
    chunked.model.text_encoder.encoder.register_forward_pre_hook(  # (a recomputation stops
        lambda module, inputs: encoder_calls.append(inputs[0].shape[-3]))  # early: no post hook)

    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, 3, 32, 32, generator=generator)
    label = torch.tensor([0, 1, 2, 1])
    images = TrainingImages(pixels=image)
    if features:  # as TRAIN.FEATURE_CACHE serves them
        with torch.no_grad():
            images = TrainingImages(encoded={"features": plain.model.image_features(image)})
    expected_terms, expected_grads = step_terms_and_gradients(plain, images, label)
    terms, grads = step_terms_and_gradients(chunked, images, label)

    assert terms.keys() == expected_terms.keys()
    for key in terms:
        torch.testing.assert_close(terms[key], expected_terms[key], rtol=1e-5, atol=1e-5)
    assert grads.keys() == expected_grads.keys() and grads
    for key in grads:
        torch.testing.assert_close(grads[key], expected_grads[key], rtol=1e-5, atol=1e-5)
    # 4 classes in chunks of 3 and 1, each encoded once forward and once more in the
    # backward (the checkpoint's recomputation); CoCoOp does so for each image.
    passes = len(label) if name == "CoCoOp" else 1
    assert encoder_calls == [3, 1] * passes + [1, 3] * passes


def test_a_negative_chunk_size_is_refused_by_name(tiny_clip, fake_caltech):
    from datasets.errors import ConfigError

    with pytest.raises(ConfigError, match="CHUNK_CLASSES must be >= 0"):
        make_trainer("CoOp", fake_caltech, tiny_clip["tiny-ViT"],
                     "TRAIN.TEXT_ENCODER.CHUNK_CLASSES", "-1")
