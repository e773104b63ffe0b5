"""Speed features that must not change results: the truncated text encoder, the
once-per-evaluation encodings, the training feature cache; and the benchmarks'
machine-readable output (numbers only, no timing asserted)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from runs.errors import ConfigError
from tests.conftest import REPO, make_trainer
from tests.oracles import openai_clip
from trainers.feature_cache import CachedFeatureLoader


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
def _train(name, data, checkpoint, output_dir, *opts, epochs=3):
    trainer = make_trainer(name, data, checkpoint, "OPTIM.MAX_EPOCH", str(epochs),
                           "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "TEST.NO_TEST", "True", *opts,
                           output_dir=str(output_dir))
    trainer.train()
    return trainer


@pytest.mark.parametrize("name", ["CoOp", "E2MIM"])
def test_cache_of_one_deterministic_view_trains_exactly_as_without(tiny_clip, fake_caltech,
                                                                   tmp_path, name):
    """With a deterministic transform and one view, the cache serves the very features the
    image encoder would compute, in the loader's batch order: the same run, and the same
    global random state afterwards (everything seeded later is unchanged)."""
    runs = {}
    for cache in (False, True):
        trainer = _train(name, fake_caltech, tiny_clip["tiny-ViT"], tmp_path / str(cache),
                         "INPUT.TRANSFORMS", "['normalize']", "TRAIN.FEATURE_CACHE.ENABLED",
                         str(cache), "TRAIN.FEATURE_CACHE.VIEWS", "1")
        assert isinstance(trainer.train_loader_x, CachedFeatureLoader) == cache
        runs[cache] = (trainer.model.prompt_learner.ctx.detach().clone(),
                       torch.random.get_rng_state())
    torch.testing.assert_close(runs[True][0], runs[False][0], rtol=0, atol=1e-6)
    assert not torch.equal(runs[True][0], make_trainer(
        name, fake_caltech, tiny_clip["tiny-ViT"]).model.prompt_learner.ctx)  # it trained
    assert torch.equal(runs[True][1], runs[False][1])


def asymmetric_caltech(root):
    """A fake Caltech101 whose images are random noise (not mirror-symmetric)."""
    import glob

    import numpy as np
    from PIL import Image

    from tests import dataset_trees

    dataset_trees.caltech101(str(root), per_class=6)
    rng = np.random.default_rng(0)
    for path in glob.glob(osp.join(str(root), "**", "*.jpg"), recursive=True):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path, format="PNG")
    return str(root)


def test_cached_views_are_augmentations_of_each_image_and_reproducible(tiny_clip, tmp_path):
    checkpoint = tiny_clip["tiny-ViT"]
    data = asymmetric_caltech(tmp_path / "data")
    opts = ["INPUT.TRANSFORMS", "['random_flip', 'normalize']",
            "TRAIN.FEATURE_CACHE.ENABLED", "True", "TRAIN.FEATURE_CACHE.VIEWS", "4"]
    trainers = [make_trainer("CoOp", data, checkpoint, *opts) for _ in range(2)]
    for trainer in trainers:
        trainer.fill_feature_cache()
    cache = trainers[0].train_loader_x
    features = cache.features
    assert features.shape == (4, len(trainers[0].dm.dataset.train_x), 32)  # embed dim 32
    assert torch.equal(features, trainers[1].train_loader_x.features)  # same seed, same views

    # Every view is the feature of the image or of its mirror image (the only
    # augmentation), and both occur.
    data_source = cache.loader.dataset.data_source
    test_transform = trainers[0].test_loader.dataset.transform
    from dassl.data.data_manager import read_image

    model, flipped_views = trainers[0].model, 0
    with torch.no_grad():
        for i, item in enumerate(data_source):
            image = test_transform(read_image(item.impath)).unsqueeze(0)
            plain = model.image_features(image)[0]
            mirror = model.image_features(image.flip(-1))[0]
            for view in features[:, i]:
                is_plain = torch.allclose(view, plain, atol=1e-5)
                is_mirror = torch.allclose(view, mirror, atol=1e-5)
                assert is_plain or is_mirror
                flipped_views += is_mirror and not is_plain
    assert 0 < flipped_views < features.shape[0] * features.shape[1]

    # Epochs draw views from (seed, epoch): reproducible, different between epochs.
    def epoch_batches(epoch):
        cache.set_epoch(epoch)
        return torch.cat([batch["img"] for batch in cache])

    state = torch.random.get_rng_state()
    first = epoch_batches(0)
    torch.random.set_rng_state(state)
    assert torch.equal(first, epoch_batches(0))
    torch.random.set_rng_state(state)
    assert not torch.equal(first, epoch_batches(1))


def test_resumed_run_with_cache_ends_as_an_uninterrupted_one(tiny_clip, fake_caltech, tmp_path):
    opts = ["TRAIN.FEATURE_CACHE.ENABLED", "True", "TRAIN.FEATURE_CACHE.VIEWS", "3"]
    whole = _train("E2MIM", fake_caltech, tiny_clip["tiny-ViT"], tmp_path / "whole", *opts)
    # A run of the same config that stops after its first epoch (as if killed then).
    stopped = make_trainer("E2MIM", fake_caltech, tiny_clip["tiny-ViT"], "OPTIM.MAX_EPOCH", "3",
                           "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "TEST.NO_TEST", "True", *opts,
                           output_dir=str(tmp_path / "parts"))
    stopped.before_train()
    stopped.epoch = 0
    stopped.before_epoch()
    stopped.run_epoch()
    stopped.after_epoch()
    resumed = _train("E2MIM", fake_caltech, tiny_clip["tiny-ViT"], tmp_path / "parts", *opts)
    assert resumed.start_epoch == 1
    assert torch.equal(whole.model.prompt_learner.ctx, resumed.model.prompt_learner.ctx)


@pytest.mark.parametrize("opts, message", [
    (["TRAINER.E2MIM.MIXUP_LEVEL", "image"], "MIXUP_LEVEL image"),
    (["TRAIN.FEATURE_CACHE.VIEWS", "0"], "VIEWS must be >= 1"),
])
def test_cache_refused_where_it_would_change_the_method(tiny_clip, fake_caltech, opts, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer("E2MIM", fake_caltech, tiny_clip["tiny-ViT"],
                     "TRAIN.FEATURE_CACHE.ENABLED", "True", *opts)


# ---------------------------------------------------------------- benchmarks
def _benchmark(name, tmp_path, *args):
    out = tmp_path / f"{name}.json"
    subprocess.run([sys.executable, osp.join(REPO, "benchmarks", f"{name}.py"), "--quick",
                    "--reps", "1", "--workdir", str(tmp_path / "work"), "--json", str(out),
                    *args], check=True, cwd=REPO, capture_output=True, timeout=300)
    return json.loads(out.read_text())


def test_benchmarks_write_their_json(tmp_path):
    train = _benchmark("train_speed", tmp_path, "--backbones", "SynthCLIP-RN", "--classes", "10",
                       "--batch", "8")
    for key in ["ZeroshotCLIP", "CoOp", "CoCoOp/batch1", "CoCoOp/batch4", "KgCoOp",
                "E2MIM/feature", "E2MIM/image", "CoOp/cached", "E2MIM/feature/cached"]:
        entry = train[key]
        assert set(entry) == {"ms_per_image", "min", "max", "peak_mem_mb"}
        assert 0 < entry["min"] <= entry["ms_per_image"] <= entry["max"]
        assert entry["peak_mem_mb"] >= 0

    evaluation = _benchmark("eval_speed", tmp_path, "--classes", "10", "--batch", "25")
    assert evaluation["same_predictions"] is True
    assert evaluation["ours_images_per_s"] > 0 and evaluation["per_batch_text_images_per_s"] > 0
    assert evaluation["image_encoder_images_per_s"] > 0

    text = _benchmark("text_encoder", tmp_path, "--backbone", "tiny-ViT", "--classes", "8")
    assert text["truncated_ms"] > 0 and text["full_ms"] > 0
    assert text["max_abs_diff"] < 1e-5
