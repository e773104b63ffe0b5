"""The faithful world: SynthCLIP-Cone's construction and calibration, tools.world_check's
fidelity arithmetic, and the demo's configs against the methods' published ones."""
import glob
import math
import os
import os.path as osp
import re

import pytest
import torch
import yaml
from torch.nn import functional as F

from clip.clip import model_file, read_state_dict
from clip.model import build_model
from datasets.synthworld_render import COLOURS, SHAPES, render
from runs.grid import METHODS
from tools import world_check
from tools.pretrain_synthclip import RECIPES, cone_construction, normalize_images
from trainers.clip_prompting import tokenize_to_last_eot

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def features(model, n=200, seed=5):
    """Normalised image and text features of ``n`` fresh pretraining pairs."""
    names = list(COLOURS)
    gen = torch.Generator().manual_seed(seed)
    colours, shapes = torch.randint(10, (n,), generator=gen), torch.randint(10, (n,), generator=gen)
    classes = [f"a photo of a {names[c]} {SHAPES[s]}." for c in range(10) for s in range(10)]
    with torch.no_grad():
        images, _ = render(colours, shapes, gen, names)
        image = F.normalize(model.encode_image(normalize_images(images)).float(), dim=-1)
        text = F.normalize(model.encode_text(tokenize_to_last_eot(classes)).float(), dim=-1)
    return image, text, colours * 10 + shapes


def test_the_cone_construction_is_the_old_softmax_at_its_effective_temperature():
    old_state = read_state_dict(model_file("SynthCLIP-ViT"))
    old = build_model({k: v.clone() for k, v in old_state.items()}).float().eval()
    new = build_model(cone_construction(old_state, effective_scale=6.0, matched_cosine=0.3)).float().eval()
    assert new.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-6)
    assert new.text_projection.shape[1] == old.text_projection.shape[1] + 2
    image_old, text_old, labels = features(old)
    image_new, text_new, _ = features(new)
    old_probs = F.softmax(6.0 * image_old @ text_old.t(), dim=-1)
    new_probs = F.softmax(100.0 * image_new @ text_new.t(), dim=-1)
    # Equal up to the spread of the learned part's norms (measured: total variation
    # 0.063 on average, 0.20 at most, the same prediction for 98% of the images; without
    # the exact rewrite of the LayerNorm channel, 0.2 and 0.58).
    total_variation = (old_probs - new_probs).abs().sum(1)
    assert total_variation.mean().item() < 0.1
    assert total_variation.max().item() < 0.3
    assert (old_probs.argmax(1) == new_probs.argmax(1)).float().mean().item() > 0.95
    # The releases' geometry: matched cosines near 0.3, unmatched a little lower.
    cosines = image_new @ text_new.t()
    matched = cosines.gather(1, labels[:, None]).mean().item()
    assert matched == pytest.approx(0.3, abs=0.03)
    assert 0.15 < cosines.mean().item() < matched
    # The old model's cosines: far wider (0.7 matched), so logits at 100 would be overconfident.
    assert (image_old * text_old[labels]).sum(1).mean().item() > 0.6


def test_the_shipped_world_clip_is_its_recipe():
    recipe = RECIPES["SynthCLIP-Cone"]
    built = cone_construction(read_state_dict(model_file(recipe["construct"])),
                              recipe["effective_scale"], recipe["matched_cosine"],
                              text_stream_scale=recipe["text_stream_scale"])
    shipped = read_state_dict(model_file("SynthCLIP-Cone"))
    assert set(built) == set(shipped)
    for key in shipped:
        assert torch.equal(built[key].to(shipped[key].dtype), shipped[key]), key


def test_the_text_stream_scale_leaves_the_text_tower_s_function_nearly_unchanged():
    state = read_state_dict(model_file("SynthCLIP-ViT"))
    plain = build_model(cone_construction(state, 6.0, 0.3)).float().eval()
    scaled_state = cone_construction(state, 6.0, 0.3, text_stream_scale=0.5)
    assert torch.allclose(scaled_state["token_embedding.weight"].float(),
                          0.5 * state["token_embedding.weight"].float(), rtol=2e-3, atol=1e-6)
    scaled = build_model(scaled_state).float().eval()
    prompts = tokenize_to_last_eot(["a photo of a red circle.", "a photo of a gray moon."])
    with torch.no_grad():
        a = F.normalize(plain.encode_text(prompts).float(), dim=-1)
        b = F.normalize(scaled.encode_text(prompts).float(), dim=-1)
    # Only LayerNorm's epsilon sees the scale: the features agree to a cosine of 0.999.
    assert (a * b).sum(-1).min().item() > 0.999


# ---------------------------------------------------------------- fidelity arithmetic
def write_log(folder, accuracy, signal):
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, "log.txt"), "w") as f:
        f.write(f"epoch [1/1] loss 1.0\n{signal}\n* total: 100\n* accuracy: {accuracy}%\n")


def write_tree(root, table, cfg="synthworld_published"):
    """table: {trainer or trainer@cfg: [(base, new) per seed]}"""
    for name, seeds in table.items():
        trainer, _, variant = name.partition("@")
        for seed, (base, new) in enumerate(seeds, 1):
            common = osp.join("synthworld", "shots_16", trainer, variant or cfg, f"seed{seed}")
            write_log(osp.join(root, "train_base", common), base, "Finish training")
            write_log(osp.join(root, "test_new", common), new, "=> result")


PUBLISHED_PATTERN = {  # the published average's base and new (ViT-B/16), two seeds each +-0.5
    "ZeroshotCLIP": [(69.34, 74.22), (69.34, 74.22)],
    "CoOp": [(82.2, 62.7), (83.2, 63.7)], "CoCoOp": [(80.0, 71.2), (81.0, 72.2)],
    "ProGrad": [(82.0, 70.3), (83.0, 71.3)], "KgCoOp": [(80.2, 73.1), (81.2, 74.1)],
    "IVLP": [(83.7, 71.3), (84.7, 72.3)], "MaPLe": [(81.8, 74.6), (82.8, 75.6)],
    "PromptSRC": [(83.8, 75.6), (84.8, 76.6)], "E2MIM": [(10.0, 10.0), (12.0, 12.0)],
    "CoOp@synthworld_published_ctxv1": [(75.0, 75.0), (75.0, 75.0)],
}


def test_fidelity_passes_on_the_published_table_itself(tmp_path):
    write_tree(tmp_path, PUBLISHED_PATTERN)
    rows = world_check.method_rows(str(tmp_path))
    assert rows["CoOp"]["mean_base"] == pytest.approx(82.7)
    assert rows["CoOp@synthworld_published_ctxv1"]["H"] == pytest.approx(75.0)
    checks, numbers = world_check.fidelity(rows)
    assert all(ok for _, ok in checks), checks
    assert numbers["tau"] == pytest.approx(1.0)  # the same order as the published H
    assert "E2MIM" not in numbers["methods"]  # shown, never checked
    assert numbers["best"] == "PromptSRC"
    # H of the means (83.3, 76.1) minus zero-shot's H of (69.34, 74.22); std of the per-seed H.
    h = world_check.harmonic_mean
    assert numbers["best_gain"] == pytest.approx(h(84.3, 76.1) - h(69.34, 74.22))
    per_seed = [h(83.8, 75.6), h(84.8, 76.6)]
    assert numbers["best_std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2)


def test_fidelity_fails_each_sign_that_does_not_hold(tmp_path):
    table = dict(PUBLISHED_PATTERN)
    table["KgCoOp"] = [(69.0, 74.0), (69.0, 74.0)]  # no gain on base
    table["CoOp"] = [(82.0, 75.0), (83.0, 75.0)]  # no drop on new
    table["PromptSRC"] = [(70.0, 40.0), (99.0, 99.0)]  # the best method, but its spread is huge
    write_tree(tmp_path, table)
    checks = dict(world_check.fidelity(world_check.method_rows(str(tmp_path)))[0])
    failed = [text for text, ok in checks.items() if not ok]
    assert any(t.startswith("every learned method's base") and "KgCoOp" in t for t in failed)
    assert any(t.startswith("CoOp's new accuracy below") for t in failed)
    assert any(t.startswith("CoOp's drop on new classes the largest") for t in failed)
    # tau over 8 methods: reversing two pairs of neighbours leaves 26 of 28 concordant.
    (tau_text,) = [t for t in checks if t.startswith("Kendall")]
    tau = float(re.search(r"tau (-?[\d.]+)", tau_text).group(1))
    published = [71.70, 71.66, 75.83, 76.16, 77.00, 77.50, 78.55, 79.97]
    rows = world_check.method_rows(str(tmp_path))
    world = [rows[m]["H"] for m in world_check.FIDELITY_METHODS]
    concordant = sum(1 for i in range(8) for j in range(i + 1, 8)
                     if (world[i] - world[j]) * (published[i] - published[j]) > 0)
    assert tau == pytest.approx((2 * concordant - 28) / 28, abs=1e-3)


def test_world_check_refuses_a_missing_tree(capsys):
    with pytest.raises(SystemExit) as error:
        world_check.main(["--tree", "/nonexistent/base2new"])
    assert error.value.code == 2
    assert "no such folder" in capsys.readouterr().err


# ---------------------------------------------------------------- the demo's configs
def published_config_of(path):
    """The published config a demo YAML names in its header: '(<name>.yaml: ...' or '(<name>: ...'."""
    header = "".join(line for line in open(path) if line.startswith("#"))
    match = re.search(r"\(([\w+.-]+?)(?:\.yaml)?[:,]", header)
    assert match, f"{path} does not name its published config in its header"
    return match.group(1)


DEMO_CONFIGS = sorted(glob.glob(osp.join(REPO, "configs", "trainers", "*", "synthworld_published*.yaml")))


@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_each_demo_config_has_its_method_s_published_optimiser(path):
    method_dir = osp.basename(osp.dirname(path))
    published_path = osp.join(osp.dirname(path), published_config_of(path) + ".yaml")
    assert osp.isfile(published_path), published_path
    demo, published = yaml.safe_load(open(path)), yaml.safe_load(open(published_path))
    for key in ("NAME", "LR", "LR_SCHEDULER", "WARMUP_EPOCH", "WARMUP_TYPE", "WARMUP_CONS_LR"):
        assert demo["OPTIM"].get(key) == published["OPTIM"].get(key), (key, path)
    assert demo["OPTIM"]["MAX_EPOCH"] <= published["OPTIM"]["MAX_EPOCH"]
    assert (demo["DATALOADER"]["TRAIN_X"]["BATCH_SIZE"]
            == published["DATALOADER"]["TRAIN_X"]["BATCH_SIZE"])
    assert demo["MODEL"]["BACKBONE"]["NAME"] == world_check.WORLD_CLIP
    if "TRAINER" not in published:  # CoOp's vit_b16.yaml: its scripts set N_CTX 16, no init
        assert demo["TRAINER"]["COOP"]["N_CTX"] == 16 and demo["TRAINER"]["COOP"]["CTX_INIT"] == ""
        return
    node = next(iter(published["TRAINER"]))
    for key, value in published["TRAINER"][node].items():
        if key == "PREC":  # fp16 needs CUDA: fp32 on a CPU either way (logged)
            continue
        if key.startswith("PROMPT_DEPTH"):  # capped at the tower's layers (3 text, 9 vision)
            assert demo["TRAINER"][node][key] == min(value, 3 if "TEXT" in key or
                                                     method_dir == "MaPLe" else 9), key
        elif key.startswith("GPA_"):  # moves with the epochs (stated in the YAML)
            assert demo["TRAINER"][node][key] <= value
        else:
            assert demo["TRAINER"][node].get(key) == value, (key, path)
    assert osp.basename(published_path)[:-5] in {m.config for m in METHODS.values()} | {
        "vit_b16"}, "compare with the config the protocols run"


def test_the_demo_runs_every_method_on_its_published_config():
    script = open(osp.join(REPO, "scripts", "demo.sh")).read()
    assert "CFG=synthworld_published" in script
    for method in ("CoCoOp", "PromptSRC", "IVLP", "ProGrad", "MaPLe", "E2MIM", "KgCoOp", "CoOp",
                   "CoOp@${CFG}_ctxv1", "E2MIM@${CFG}_no_mi", "E2MIM@${CFG}_no_mixup",
                   "E2MIM@${CFG}_no_mi_no_mixup"):
        assert re.search(rf"(?<![\w@]){re.escape(method)}(?![\w@])", script), method
    for name in ("CoOp", "CoCoOp", "KgCoOp", "ProGrad", "IVLP", "MaPLe", "PromptSRC", "E2MIM"):
        assert osp.isfile(osp.join(REPO, "configs", "trainers", name, "synthworld_published.yaml"))


def test_the_calibration_of_the_shipped_world_clip(tmp_path):
    """The demo's task at a quarter of its test images per class: the world CLIP meets
    the releases' calibration (python -m tools.world_check prints the same on the full set)."""
    result = world_check.calibration("SynthCLIP-Cone", str(tmp_path),
                                     ["DATASET.SYNTHWORLD.TRAIN_PER_CLASS", 1,
                                      "DATASET.SYNTHWORLD.VAL_PER_CLASS", 1,
                                      "DATASET.SYNTHWORLD.TEST_PER_CLASS", 8])
    assert result["logit_scale"] == pytest.approx(100.0)
    for half in ("base", "new"):
        assert 1.0 <= result[half]["cross_entropy"] <= 2.5, result
        assert 55.0 <= result[half]["accuracy"] <= 85.0, result  # 400 images: +-2.4 points
    assert 0.2 < result["unmatched_cosine"] < result["matched_cosine"] < 0.4
    assert math.isfinite(result["matched_cosine"])
