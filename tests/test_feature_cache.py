"""TRAIN.FEATURE_CACHE (trainers/feature_cache.py): loader-identical batches, reproducible
augmented copies, exact resume, and refusal where it would change the method."""
import os.path as osp

import pytest
import torch

from datasets.errors import ConfigError
from tests.helpers import make_trainer
from trainers.feature_cache import CachedFeatureLoader


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
                         str(cache), "TRAIN.FEATURE_CACHE.AUGMENTATIONS", "1")
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
            "TRAIN.FEATURE_CACHE.ENABLED", "True", "TRAIN.FEATURE_CACHE.AUGMENTATIONS", "4"]
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
        return torch.cat([batch["features"] for batch in cache])

    state = torch.random.get_rng_state()
    first = epoch_batches(0)
    torch.random.set_rng_state(state)
    assert torch.equal(first, epoch_batches(0))
    torch.random.set_rng_state(state)
    assert not torch.equal(first, epoch_batches(1))


def test_resumed_run_with_cache_ends_as_an_uninterrupted_one(tiny_clip, fake_caltech, tmp_path):
    opts = ["TRAIN.FEATURE_CACHE.ENABLED", "True", "TRAIN.FEATURE_CACHE.AUGMENTATIONS", "3"]
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
    (["TRAIN.FEATURE_CACHE.AUGMENTATIONS", "0"], "AUGMENTATIONS must be >= 1"),
])
def test_cache_refused_where_it_would_change_the_method(tiny_clip, fake_caltech, opts, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer("E2MIM", fake_caltech, tiny_clip["tiny-ViT"],
                     "TRAIN.FEATURE_CACHE.ENABLED", "True", *opts)


# ---------------------------------------------------------------- benchmarks
