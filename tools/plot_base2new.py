"""Base, new and H per dataset and on average, methods side by side, error bars over seeds.

    python -m tools.plot_base2new output/base2new [--out output/figures/base2new]

Methods are ordered zero-shot first, then the baselines, then E2MIM; each method
keeps one fill from a colour-blind-safe palette and one hatch, no two alike, with the
legend beside the axes. One panel per dataset, and the average only when there are
several. The numbers are parse_test_res.py's reading of the same tree. Writes
OUT.png and OUT.pdf.
"""
import argparse
import os.path as osp

import numpy as np

from parse_test_res import base2new_records, collect_base2new
from tools.plotting import close, method_order, new_figure, save_figure, style

METRICS = ("base", "new", "H")


def series(root):
    """{method label: [record per dataset, then the average]} for every trainer/config."""
    results = collect_base2new(root)
    if not results:
        raise SystemExit(
            f"plot_base2new.py: error: no base-to-new runs under {root} (expected "
            f"{root}/train_base/<dataset>/shots_<K>/<trainer>/<cfg>/seed<N> and test_new/...; "
            "run scripts/<method>/base2new_train.sh and base2new_test.sh)")
    trainers = [trainer for _, trainer, _ in results]
    labeled = {}
    for (shots, trainer, cfg), per_dataset in results.items():
        label = trainer if trainers.count(trainer) == 1 else f"{trainer} ({cfg})"
        labeled[label] = base2new_records(per_dataset)
    return {label: labeled[label] for label in method_order(labeled)}


def plot(root, out_base):
    """Draw the figure; returns (figure, paths written)."""
    methods = series(root)
    panels = []  # dataset names, in the order of the first method's records, average last
    for records in methods.values():
        for record in records:
            name = "average" if record["dataset"].startswith("average") else record["dataset"]
            if name not in panels:
                panels.append(name)
    datasets = [p for p in panels if p != "average"]
    panels = datasets + (["average"] if len(datasets) > 1 else [])
    fig, axes = new_figure(len(panels), width=max(3.6, 0.45 * len(methods) + 2.2))
    width = 0.8 / len(methods)
    # The axis starts 10 points below the lowest bar (rounded down to 10), not at 0, so
    # that differences of a few points show; the label says where it starts.
    lowest = min((r[m] - (r.get(m + "_std") or 0.0) for records in methods.values()
                  for r in records for m in METRICS if r[m] is not None), default=0.0)
    bottom = max(0.0, 10.0 * ((lowest - 10.0) // 10.0))
    for ax, panel in zip(axes, panels):
        for i, (method, records) in enumerate(methods.items()):
            record = next((r for r in records if r["dataset"] == panel or
                           (panel == "average" and r["dataset"].startswith("average"))), None)
            if record is None:
                continue
            look = style(i)
            values = [record[m] if record[m] is not None else np.nan for m in METRICS]
            errors = [record.get(m + "_std") or 0.0 for m in METRICS]
            x = np.arange(len(METRICS)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, values, width, yerr=errors, capsize=2, label=method, color=look["fill"],
                   hatch=look["hatch"], edgecolor="black", linewidth=0.5, gid=f"{method}|{panel}")
        ax.set_title(panel if panel != "average" else next(
            r["dataset"] for r in next(iter(methods.values())) if r["dataset"].startswith("average")))
        ax.set_xticks(range(len(METRICS)), METRICS)
        ax.set_ylabel("accuracy (%)" if bottom == 0 else f"accuracy (%; axis from {bottom:.0f})")
        ax.set_ylim(bottom, 100)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False)
    fig.suptitle("Base-to-new generalisation (error bars: std over seeds)")
    fig.tight_layout()
    paths = save_figure(fig, out_base)
    return fig, paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="the base2new folder of an output tree")
    parser.add_argument("--out", default="", help="output path without extension "
                        "(default: ROOT/../figures/base2new)")
    args = parser.parse_args(argv)
    out = args.out or osp.join(osp.dirname(osp.abspath(args.root)), "figures", "base2new")
    fig, paths = plot(args.root, out)
    close(fig)
    print("Wrote " + " and ".join(paths))


if __name__ == "__main__":
    main()
