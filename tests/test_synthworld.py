"""SynthWorld: the generator, the loader, the shipped SynthCLIP-RN, the pretraining tool, and the
demo's quick path."""
import filecmp
import os
import os.path as osp
import subprocess

import pytest
import torch

import datasets  # noqa: F401
from clip import clip
from clip.model import VisionTransformer
from clip.shapes import MODEL_SHAPES
from dassl.data.datasets import DATASET_REGISTRY
from datasets.synthworld import class_list, generate_world
from datasets.synthworld_render import COLOURS
from tests.helpers import REPO
from tools import pretrain_synthclip
from tools.pretrain_synthclip import zero_shot_accuracy
from trainers.clip_prompting import load_clip_for_run
from trainers.defaults import default_cfg

SMALL = ["N_COLOURS", 4, "N_SHAPES", 3, "TRAIN_PER_CLASS", 3, "VAL_PER_CLASS", 1,
         "TEST_PER_CLASS", 2]


def world_cfg(root, subsample="all", shots=-1, **changes):
    cfg = default_cfg()
    cfg.DATASET.NAME, cfg.DATASET.ROOT = "SynthWorld", str(root)
    cfg.DATASET.SUBSAMPLE_CLASSES, cfg.DATASET.NUM_SHOTS, cfg.SEED = subsample, shots, 1
    for key, value in zip(SMALL[::2], SMALL[1::2]):
        cfg.DATASET.SYNTHWORLD[key] = changes.get(key, value)
    return cfg


def test_same_seed_same_bytes(tmp_path):
    cfg = world_cfg(tmp_path)
    from datasets.synthworld import world_settings

    generate_world(str(tmp_path / "a"), world_settings(cfg))
    generate_world(str(tmp_path / "b"), world_settings(cfg))
    files = sorted(os.path.relpath(osp.join(d, f), tmp_path / "a")
                   for d, _, fs in os.walk(tmp_path / "a") for f in fs)
    assert len(files) == 4 * 3 * (3 + 1 + 2) + 2  # images + split file + world.json
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert not mismatch and not errors
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".synthworld-")]


def test_loader_classes_splits_and_base_new(tmp_path):
    everything = DATASET_REGISTRY.get("SynthWorld")(world_cfg(tmp_path))
    assert everything.classnames[:4] == ["red circle", "red square", "red triangle",
                                         "orange circle"]
    assert len(everything.classnames) == 12
    assert (len(everything.train_x), len(everything.val), len(everything.test)) == (36, 12, 24)
    base = DATASET_REGISTRY.get("SynthWorld")(world_cfg(tmp_path, "base", shots=2))
    new = DATASET_REGISTRY.get("SynthWorld")(world_cfg(tmp_path, "new"))
    assert {n.split()[0] for n in base.classnames} == {"red", "orange"}
    assert {n.split()[0] for n in new.classnames} == {"yellow", "green"}
    assert len(base.train_x) == 6 * 2
    assert [label for label, *_ in class_list({"colours": 2, "shapes": 2})] == [0, 1, 2, 3]


def test_a_world_made_with_other_settings_is_refused(tmp_path):
    DATASET_REGISTRY.get("SynthWorld")(world_cfg(tmp_path))
    with pytest.raises(ValueError, match=r"other settings .*'hue_shift': \(20.0, 10.0\)"):
        cfg = world_cfg(tmp_path)
        cfg.DATASET.SYNTHWORLD.HUE_SHIFT = 10.0
        DATASET_REGISTRY.get("SynthWorld")(cfg)


def test_shipped_checkpoint_zero_shot_on_the_pretraining_distribution():
    assert "SynthCLIP-RN" in clip.available_models()
    size_mb = osp.getsize(clip.model_file("SynthCLIP-RN")) / 2**20
    assert size_mb <= 25
    model, _ = clip.load("SynthCLIP-RN", device="cpu")
    colours = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "cyan",
               "gray"]
    # 100 classes, 10 fresh images each, a seed the pretraining never used.
    accuracy = zero_shot_accuracy(model, colours, n_per_class=10, seed=987)
    assert accuracy >= 65.0, accuracy


def test_shipped_vit_zero_shot_logit_scale_and_loading_as_a_backbone(tmp_path):
    assert osp.getsize(clip.model_file("SynthCLIP-ViT")) / 2**20 <= 25
    def backbone(name):
        cfg = world_cfg(tmp_path)
        cfg.MODEL.BACKBONE.NAME, cfg.INPUT.SIZE = name, (32, 32)
        return load_clip_for_run(cfg, "fp32")  # also checks INPUT.SIZE against the backbone

    model = backbone("SynthCLIP-ViT")
    assert model.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-6)
    _, resolution, vision_layers, _, patch, *_, text_layers = MODEL_SHAPES["SynthCLIP-ViT"]
    assert isinstance(model.visual, VisionTransformer)
    assert (model.visual.input_resolution, model.visual.conv1.kernel_size) == (resolution,
                                                                               (patch, patch))
    assert (len(model.visual.transformer.resblocks), len(model.transformer.resblocks)) == (
        vision_layers, text_layers) == (9, 3)
    # The text tower is SynthCLIP-RN's (the ViT's image tower was distilled into its space).
    rn = backbone("SynthCLIP-RN")
    for key, value in rn.state_dict().items():
        if not key.startswith("visual.") and key != "logit_scale":
            assert torch.equal(model.state_dict()[key], value), key
    accuracy = zero_shot_accuracy(model, list(COLOURS)[:10], n_per_class=10, seed=987)
    assert accuracy >= 65.0, accuracy


def test_pretraining_tool_ramps_the_vit_scale_to_100_and_still_learns_the_rn_one(tmp_path):
    for name, steps in (("SynthCLIP-ViT", 2), ("SynthCLIP-RN", 2)):
        out = str(tmp_path / f"{name}.pt")
        pretrain_synthclip.main(["--model", name, "--steps", str(steps), "--warmup", "1",
                                 "--batch-size", "8", "--eval-per-class", "1", "--out", out])
        model, _ = clip.load(out, device="cpu")
        assert isinstance(model.visual, VisionTransformer) == (name == "SynthCLIP-ViT")
        scale = model.logit_scale.exp().item()
        if name == "SynthCLIP-ViT":
            assert scale == pytest.approx(100.0, rel=1e-6)
        else:  # learned from CLIP's initial 1/0.07, moved a little by the two AdamW steps
            assert 0 < abs(scale * 0.07 - 1) < 0.01, scale


def test_demo_quick_path_on_a_reduced_world(tmp_path):
    env = dict(os.environ, DEMO_OUTPUT=str(tmp_path / "demo"), DEMO_DATA=str(tmp_path / "data"),
               DEMO_JOBS="2", PYTHON=os.environ.get("PYTHON", "python"),
               EXTRA_OPTS="OPTIM.MAX_EPOCH 1 DATASET.SYNTHWORLD.N_COLOURS 4 "
                          "DATASET.SYNTHWORLD.N_SHAPES 2 DATASET.SYNTHWORLD.TRAIN_PER_CLASS 4 "
                          "DATASET.SYNTHWORLD.TEST_PER_CLASS 3 DATALOADER.TRAIN_X.BATCH_SIZE 4")
    import sys

    env["PYTHON"] = sys.executable
    proc = subprocess.run(["bash", osp.join(REPO, "scripts", "demo.sh"), "--quick"], cwd="/",
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for trainer in ("ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "IVLP", "MaPLe",
                    "PromptSRC", "E2MIM"):
        assert f"{trainer} / synthworld_published / shots 16" in proc.stdout, trainer
    # CoOp's second setting and E2MIM's ablations are rows of their own.
    for row in ("CoOp / synthworld_published_ctxv1", "E2MIM / synthworld_published_no_mi ",
                "E2MIM / synthworld_published_no_mixup", "E2MIM / synthworld_published_no_mi_no_mixup"):
        assert row in proc.stdout, row
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| E2MIM" in report
    # The fidelity section (tools.world_check): the reduced world fails the calibration
    # ranges, which the demo reports and goes on.
    assert "### Fidelity against the published table" in report
    assert "Kendall's tau" in report and "### The world CLIP: SynthCLIP-Cone" in report
    assert "[demo] fidelity: some checks not met" in proc.stdout
    figures = tmp_path / "demo" / "figures"
    assert (figures / "base2new.png").is_file() and (figures / "base2new.pdf").is_file()
    assert len(list(figures.glob("tsne_*seed1.png"))) == 2  # one E2MIM and one CoOp run, new classes
    # A second call reuses every finished job.
    again = subprocess.run(["bash", osp.join(REPO, "scripts", "demo.sh"), "--quick"], cwd="/",
                           env=env, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0
    assert "[sweep] base2new: 12 tasks, 12 finished, 0 to run" in again.stdout
