"""Text encoding that must not change results: the truncated text encoder (every prompt
trainer, against OpenAI's transformer over all 77 positions) and the once-per-evaluation
encodings."""

import pytest
import torch

from tests.helpers import make_trainer
from tests.oracles import openai_clip


def full_context_reference(checkpoint, prompts, tokenized):
    """OpenAI's text transformer over all 77 positions, on prompt embeddings."""
    reference = openai_clip().model.build_model(torch.load(checkpoint, weights_only=True)).float().eval()
    with torch.no_grad():
        x = prompts + reference.positional_embedding
        x = reference.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = reference.ln_final(x)
        return x[torch.arange(x.shape[0]), tokenized.argmax(-1)] @ reference.text_projection


@pytest.mark.parametrize("name", ["CoOp", "CoCoOp", "KgCoOp", "E2MIM"])
def test_truncated_text_encoder_equals_the_full_context(tiny_clip, fake_caltech, name):
    checkpoint = tiny_clip["tiny-ViT"]
    trainer = make_trainer(name, fake_caltech, checkpoint)
    model = trainer.model
    learner = model.prompt_learner
    tokenized = learner.tokenized_prompts
    with torch.no_grad():
        if name == "CoCoOp":  # prompts of one image (its context shifted by the meta-net)
            image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            prompts = learner(model.image_features(image))[0]
        else:
            prompts = learner()
        ours = model.text_encoder(prompts, tokenized)
    assert int(tokenized.argmax(-1).max()) + 1 < 30  # the truncation is real (of 77)
    expected = full_context_reference(checkpoint, prompts, tokenized)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("inference", ["soft", "ensemble"])
def test_evaluation_encodes_prompts_once_and_each_test_image_once(tiny_clip, fake_caltech,
                                                                  inference):
    trainer = make_trainer("E2MIM", fake_caltech, tiny_clip["tiny-ViT"],
                           "DATALOADER.TEST.BATCH_SIZE", "2", "TRAINER.E2MIM.INFERENCE", inference)
    text_calls, images_encoded = [], []
    trainer.model.text_encoder.register_forward_hook(lambda *a: text_calls.append(1))
    trainer.model.image_encoder.register_forward_hook(
        lambda module, inputs, output: images_encoded.append(inputs[0].shape[0]))
    trainer.test()
    assert len(text_calls) == 1  # the hand-crafted view was encoded when the model was built
    assert sum(images_encoded) == len(trainer.dm.dataset.test)
    assert len(images_encoded) == len(trainer.test_loader)


# ---------------------------------------------------------------- feature cache
