"""Accuracy against shots (1, 2, 4, 8, 16) per dataset and on average (CoOp's Figure 3).

    python -m tools.plot_fewshot output [--out output/figures/fewshot]

OUTPUT_TREE is the folder the few-shot scripts wrote (<dataset>/<trainer>/<cfg>_<K>shots/
seed<N>). One line per method with a band of +- std over seeds; zero-shot CLIP
(ZeroshotCLIP*/<cfg>/<dataset>/all, from the zeroshot scripts) is a marker at 0 shots.
Writes OUT.png and OUT.pdf.
"""
import argparse
import os.path as osp

import numpy as np

from parse_test_res import collect_fewshot, collect_zeroshot, dataset_sort_key
from tools.plotting import close, method_order, new_figure, save_figure, style


def average_curve(per_dataset):
    """{shots: [per-seed mean over datasets]} for the shots every dataset has, seeds
    paired by position (seed1 with seed1)."""
    datasets = list(per_dataset)
    shots = set.intersection(*(set(per_dataset[d]) for d in datasets))
    curve = {}
    for k in sorted(shots):
        n = min(len(per_dataset[d][k]) for d in datasets)
        curve[k] = [float(np.mean([per_dataset[d][k][i] for d in datasets])) for i in range(n)]
    return curve


def plot(root, out_base):
    results = collect_fewshot(root)
    if not results:
        raise SystemExit(
            f"plot_fewshot.py: error: no few-shot runs under {root} (expected "
            f"{root}/<dataset>/<trainer>/<cfg>_<K>shots/seed<N>/log.txt; run "
            "scripts/<method>/fewshot.sh DATASET SEED SHOTS)")
    zero_shot = collect_zeroshot(root)
    datasets = sorted({d for per in results.values() for d in per}, key=dataset_sort_key)
    panels = datasets + (["average"] if len(datasets) > 1 else [])
    fig, axes = new_figure(len(panels))
    methods = method_order(results)
    for ax, panel in zip(axes, panels):
        for i, method in enumerate(methods):
            per_dataset = results[method]
            if panel == "average":
                if set(per_dataset) != set(datasets):
                    continue
                curve = average_curve(per_dataset)
            elif panel in per_dataset:
                curve = per_dataset[panel]
            else:
                continue
            shots = sorted(curve)
            mean = np.array([np.mean(curve[k]) for k in shots])
            std = np.array([np.std(curve[k]) for k in shots])
            look = style(i)
            ax.plot(shots, mean, marker=look["marker"], linestyle=look["linestyle"],
                    color=look["color"], label=method)
            ax.fill_between(shots, mean - std, mean + std, color=look["color"], alpha=0.2,
                            hatch=look["hatch"], label=f"{method} +- std")
        zs = ([zero_shot[d] for d in datasets if d in zero_shot] if panel == "average"
              else [zero_shot[panel]] if panel in zero_shot else [])
        if zs and (panel != "average" or len(zs) == len(datasets)):
            ax.plot([0], [float(np.mean(zs))], marker="*", markersize=12, linestyle="none",
                    color="black", label="Zero-shot CLIP")
        ax.set_title(panel)
        ax.set_xticks([0, 1, 2, 4, 8, 16])
        ax.set_xlabel("shots per class")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return fig, save_figure(fig, out_base)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="the output tree of the few-shot scripts")
    parser.add_argument("--out", default="", help="output path without extension "
                        "(default: ROOT/figures/fewshot)")
    args = parser.parse_args(argv)
    fig, paths = plot(args.root, args.out or osp.join(args.root, "figures", "fewshot"))
    close(fig)
    print("Wrote " + " and ".join(paths))


if __name__ == "__main__":
    main()
