"""Is SynthWorld's CLIP release-like, and does the world rank methods as the benchmarks do?

    python -m tools.world_check                              # the shipped world CLIP, the demo's data
    python -m tools.world_check --tree output/demo/base2new  # and the fidelity of a base-to-new run tree

Calibration (the world CLIP on the task's test split, class prompts from the dataset's
template, base = the first half of the classes, new = the second, each half scored
among its own classes as the base-to-new protocol does): zero-shot accuracy and
cross-entropy at the model's stored logit scale, and the mean cosine of matched and
of unmatched image-text pairs. The checks: the stored scale is 100 (the releases'),
the cross-entropy is within 1-2.5 nats and the accuracy within 60-80% on both halves.

Fidelity (with ``--tree``): for the methods present, the base, new and H of the means
over seeds, Kendall's tau between the world's H and the published 11-dataset average H
(docs/published_results.csv: ViT-B/16, 16 shots), and the published pattern's signs:
every learned method's base accuracy above zero-shot's; CoOp's new accuracy below
zero-shot's and its drop the largest of the learned methods; tau >= 0.6; the best
method's H above zero-shot's by more than twice that method's std of H over seeds.
E2MIM is shown but left out of every check: the world is never judged on it.

Exits 1 when a check fails (2 on bad arguments).
"""
import argparse
import math
import os
import os.path as osp
import sys

import numpy as np
import torch
from PIL import Image
from scipy.stats import kendalltau
from torch.nn import functional as F

import datasets  # noqa: F401  (registers the datasets)
from clip.clip import model_file, read_state_dict
from clip.model import build_model
from dassl.config import get_cfg_default
from dassl.data.datasets import DATASET_REGISTRY
from parse_test_res import collect_base2new, harmonic_mean, load_published, published_value
from tools.pretrain_synthclip import normalize_images
from trainers.clip_prompting import tokenize_to_last_eot
from trainers.defaults import extend_cfg
from trainers.templates import template_for

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
WORLD_CLIP = "SynthCLIP-Cone"
DEMO_DATA = osp.join(REPO, "output", "demo", "data")
DEMO_CFG = "synthworld_published"  # the demo's config: every method on its published settings

# The release's range for a calibrated world CLIP (docs/SYNTHWORLD.md).
RELEASE_SCALE = 100.0
CROSS_ENTROPY_RANGE = (1.0, 2.5)
ACCURACY_RANGE = (60.0, 80.0)
# The methods whose published 11-dataset average (ViT-B/16, 16 shots) the world is held to.
FIDELITY_METHODS = ["ZeroshotCLIP", "CoOp", "CoCoOp", "ProGrad", "KgCoOp", "IVLP", "MaPLe",
                    "PromptSRC"]
MIN_TAU = 0.6


# ---------------------------------------------------------------- calibration
def task_dataset(root, opts=()):
    """SynthWorld as the demo builds it (configs/datasets/synthworld.yaml), generated into
    ``root`` on first use."""
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.merge_from_file(osp.join(REPO, "configs", "datasets", "synthworld.yaml"))
    cfg.merge_from_list(list(opts))
    cfg.DATASET.ROOT = root
    return cfg, DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


def read_images(items):
    pixels = np.stack([np.asarray(Image.open(item.impath).convert("RGB")) for item in items])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return normalize_images(images)


@torch.no_grad()
def calibration(backbone, root, opts=(), split="test"):
    """The world CLIP's zero-shot numbers on the task (see the module docstring)."""
    cfg, dataset = task_dataset(root, opts)
    model = build_model(read_state_dict(model_file(backbone))).float().eval()
    template = template_for(cfg.DATASET)
    classnames = dataset.classnames
    text = model.encode_text(tokenize_to_last_eot([template.format(c) for c in classnames]))
    text = F.normalize(text.float(), dim=-1)
    items = getattr(dataset, split)
    labels = torch.tensor([item.label for item in items])
    image = torch.cat([F.normalize(model.encode_image(read_images(items[i:i + 500])).float(), dim=-1)
                       for i in range(0, len(items), 500)])
    scale = model.logit_scale.exp().item()
    cosine = image @ text.t()
    half = len(classnames) // 2  # CoOp's base/new split: the first and the second half
    result = {"backbone": backbone, "logit_scale": scale, "split": split,
              "matched_cosine": cosine.gather(1, labels[:, None]).mean().item(),
              "unmatched_cosine": ((cosine.sum(1) - cosine.gather(1, labels[:, None])[:, 0])
                                   / (len(classnames) - 1)).mean().item()}
    for name, classes in (("base", range(half)), ("new", range(half, len(classnames)))):
        chosen = (labels >= classes.start) & (labels < classes.stop)
        logits = scale * cosine[chosen][:, classes.start:classes.stop]
        target = labels[chosen] - classes.start
        result[name] = {"accuracy": 100.0 * (logits.argmax(1) == target).float().mean().item(),
                        "cross_entropy": F.cross_entropy(logits, target).item()}
    return result


def calibration_checks(result):
    checks = [(f"logit scale {result['logit_scale']:.2f} = {RELEASE_SCALE:.0f}",
               abs(result["logit_scale"] - RELEASE_SCALE) < 1e-3)]
    for half in ("base", "new"):
        ce, accuracy = result[half]["cross_entropy"], result[half]["accuracy"]
        low, high = CROSS_ENTROPY_RANGE
        checks.append((f"{half} cross-entropy {ce:.2f} nats within {low}-{high}", low <= ce <= high))
        low, high = ACCURACY_RANGE
        checks.append((f"{half} accuracy {accuracy:.1f}% within {low:.0f}-{high:.0f}%",
                       low <= accuracy <= high))
    return checks


def calibration_section(result):
    lines = [f"### The world CLIP: {result['backbone']} (test split, zero-shot at its stored scale)",
             "",
             "| classes | accuracy | cross-entropy (nats) |", "| --- | --- | --- |"]
    for half in ("base", "new"):
        lines.append(f"| {half} | {result[half]['accuracy']:.1f}% | "
                     f"{result[half]['cross_entropy']:.2f} |")
    lines += ["", f"Logit scale {result['logit_scale']:.2f}; mean cosine of matched image-text "
              f"pairs {result['matched_cosine']:.3f}, of unmatched pairs "
              f"{result['unmatched_cosine']:.3f}."]
    return lines


# ---------------------------------------------------------------- fidelity
def method_rows(tree, dataset="synthworld", cfg=DEMO_CFG):
    """{row name: {"base": [per seed], "new": [...], "H": [...]}} for every trainer and
    config in a base-to-new tree. A trainer's row under ``cfg`` (or its only config) is
    named by the trainer; other configs are ``trainer@config``."""
    results = collect_base2new(tree)
    configs = {}
    for (shots, trainer, config) in results:
        configs.setdefault(trainer, []).append(config)
    rows = {}
    for (shots, trainer, config), per_dataset in sorted(results.items()):
        if dataset not in per_dataset:
            continue
        main = config == cfg or len(configs[trainer]) == 1
        name = trainer if main else f"{trainer}@{config}"
        base, new = per_dataset[dataset]["base"], per_dataset[dataset]["new"]
        if not base or not new:
            continue
        rows[name] = {"base": base, "new": new,
                      "H_seeds": [harmonic_mean(b, n) for b, n in zip(base, new)]}
        rows[name].update(mean_base=float(np.mean(base)), mean_new=float(np.mean(new)))
        rows[name]["H"] = harmonic_mean(rows[name]["mean_base"], rows[name]["mean_new"])
    return rows


def fidelity(rows, published_rows=None):
    """The published pattern's checks on ``rows`` (method_rows): a list of (text, passed),
    and the numbers behind them."""
    published_rows = published_rows or load_published()
    present = [m for m in FIDELITY_METHODS if m in rows]
    published = {m: published_value(published_rows, m, "average", "H")[0] for m in present}
    checks, numbers = [], {"methods": present, "published_H": published}
    if "ZeroshotCLIP" not in rows or len(present) < 3:
        return [("zero-shot CLIP and at least two learned methods in the tree", False)], numbers
    zs = rows["ZeroshotCLIP"]
    learned = [m for m in present if m != "ZeroshotCLIP"]
    below = [m for m in learned if rows[m]["mean_base"] <= zs["mean_base"]]
    checks.append(("every learned method's base accuracy above zero-shot's"
                   + (f" (not: {', '.join(below)})" if below else ""), not below))
    if "CoOp" in rows:
        drops = {m: rows[m]["mean_new"] - zs["mean_new"] for m in learned}
        numbers["new_minus_zero_shot"] = drops
        checks.append((f"CoOp's new accuracy below zero-shot's ({drops['CoOp']:+.2f})",
                       drops["CoOp"] < 0))
        largest = min(drops, key=drops.get)
        checks.append((f"CoOp's drop on new classes the largest of the learned methods "
                       f"(largest: {largest}, {drops[largest]:+.2f})", largest == "CoOp"))
    tau = kendalltau([rows[m]["H"] for m in present], [published[m] for m in present]).statistic
    numbers["tau"] = tau
    checks.append((f"Kendall's tau {tau:.3f} >= {MIN_TAU} over {len(present)} methods",
                   not math.isnan(tau) and tau >= MIN_TAU))
    best = max(learned, key=lambda m: rows[m]["H"])
    std = float(np.std(rows[best]["H_seeds"]))
    gain = rows[best]["H"] - zs["H"]
    numbers.update(best=best, best_gain=gain, best_std=std)
    checks.append((f"the best method ({best}) above zero-shot's H by {gain:.2f}, more than twice "
                   f"its std over seeds ({std:.2f}, {len(rows[best]['H_seeds'])} seeds)",
                   gain > 2 * std))
    return checks, numbers


def fidelity_section(rows, checks, numbers):
    lines = ["### Fidelity against the published table (ViT-B/16, 11-dataset average)", "",
             "| method | base | new | H | H per seed | published H |",
             "| --- | --- | --- | --- | --- | --- |"]
    order = sorted(rows, key=lambda m: rows[m]["H"])
    for name in order:
        row = rows[name]
        published = numbers["published_H"].get(name)
        lines.append(f"| {name} | {row['mean_base']:.2f} | {row['mean_new']:.2f} | {row['H']:.2f} | "
                     + " ".join(f"{h:.1f}" for h in row["H_seeds"])
                     + f" | {'' if published is None else f'{published:.2f}'} |")
    lines += ["", "Rows without a published H (E2MIM, variants) are shown, never checked.", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default=WORLD_CLIP,
                        help=f"a shipped CLIP or a checkpoint file (default {WORLD_CLIP})")
    parser.add_argument("--root", default=DEMO_DATA,
                        help="DATASET.ROOT of the task (generated there on first use; "
                             "default: the demo's, output/demo/data)")
    parser.add_argument("--tree", help="a base-to-new output tree (e.g. output/demo/base2new)")
    parser.add_argument("--cfg", default=DEMO_CFG,
                        help=f"the config whose runs are each method's row (default {DEMO_CFG})")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="KEY VALUE pairs for the task's config (DATASET.SYNTHWORLD.*)")
    args = parser.parse_args(argv)
    if args.tree and not osp.isdir(args.tree):
        parser.error(f"--tree {args.tree}: no such folder (run bash scripts/demo.sh first)")

    result = calibration(args.backbone, args.root, args.opts)
    checks = calibration_checks(result)
    lines = calibration_section(result) + [""] + [f"- {'PASS' if ok else 'FAIL'}: {text}"
                                                  for text, ok in checks]
    if args.tree:
        rows = method_rows(args.tree, cfg=args.cfg)
        fidelity_checks, numbers = fidelity(rows)
        checks += fidelity_checks
        lines += [""] + fidelity_section(rows, fidelity_checks, numbers)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.markdown:
        partial = args.markdown + ".partial"
        with open(partial, "w") as f:
            f.write(text)
        os.replace(partial, args.markdown)
    failed = [t for t, ok in checks if not ok]
    if failed:
        print(f"world_check: {len(failed)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
