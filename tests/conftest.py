"""Shared fixtures: tiny CLIP checkpoints and fake datasets, built once per session."""
import pytest

from tests.helpers import TINY_INPUT_SIZE, write_tiny_clip


@pytest.fixture
def toy_root(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """{shape: checkpoint path} for the tiny ViT and ResNet CLIPs."""
    folder = tmp_path_factory.mktemp("clip")
    return {shape: write_tiny_clip(folder / f"{shape}.pt", shape) for shape in TINY_INPUT_SIZE}


@pytest.fixture(scope="session")
def fake_caltech(tmp_path_factory):
    """DATA root holding a fake Caltech101 (4 classes, 6 images each)."""
    from tests import dataset_trees

    root = tmp_path_factory.mktemp("data")
    dataset_trees.caltech101(str(root), per_class=6)
    return str(root)
