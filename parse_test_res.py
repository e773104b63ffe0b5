"""Collect test accuracies from the logs of a run tree; mean and std over seeds.

CoOp-compatible use (DIR holds seed1/, seed2/, ... each with a log):

    python parse_test_res.py output/caltech101/CoOp/vit_b16_16shots
    python parse_test_res.py output/evaluation/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots \
        --multi-exp            # DIR holds one such folder per experiment (dataset)
    add --ci95 for a 95% confidence interval instead of the standard deviation

Base-to-new table (DIR is the protocol's root, e.g. output/base2new):

    python parse_test_res.py output/base2new --base2new [--format markdown|csv]

prints, for every trainer and config found, the base and new accuracy of each
dataset (mean +- std over seeds) and their harmonic mean, and the average over
datasets (the harmonic mean of the averaged base and new accuracies, as in the
CoCoOp paper).

    python parse_test_res.py output/base2new --base2new --compare published

adds, for every dataset the papers report, the published number beside each measured
mean (docs/published_results.csv, one cited row per paper, table, method, protocol,
dataset and metric) and the difference; a difference within the seed spread (std over
seeds) is marked not significant.
"""
import argparse
import csv
import glob
import io
import os
import os.path as osp
import re
import sys
from collections import defaultdict

import numpy as np
from tabulate import tabulate

from runs.state import run_accuracy

# The usual order of the 11 benchmarks in papers; other datasets follow, sorted.
DATASET_ORDER = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers",
                 "food101", "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]
PUBLISHED = osp.join(osp.dirname(osp.abspath(__file__)), "docs", "published_results.csv")
FEWSHOT_DIR = re.compile(r"^(?P<cfg>.+)_(?P<shots>\d+)shots$")


def seed_dirs(directory):
    return sorted(d for d in glob.glob(osp.join(directory, "*")) if osp.isdir(d)
                  and not osp.basename(d).startswith("."))


def spread(values, ci95=False):
    std = float(np.std(values))
    return 1.96 * std / np.sqrt(len(values)) if ci95 else std


def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


# ---------------------------------------------------------------- CoOp-compatible
def summarize(directory, args):
    print(f"Parsing files in {directory}")
    values = []
    for run_dir in seed_dirs(directory):
        accuracy, path = run_accuracy(run_dir, args.test_log)
        if accuracy is None:
            print(f"No result in {run_dir} (unfinished run?)")
            continue
        print(f"file: {path}. accuracy: {accuracy:.2f}%. ")
        values.append(accuracy)
    if not values:
        raise SystemExit(f"parse_test_res.py: error: no result found in {directory}")
    mean = float(np.mean(values))
    print("===")
    print(f"Summary of directory: {directory}")
    print(f"* accuracy: {mean:.2f}% +- {spread(values, args.ci95):.2f}%")
    print("===")
    return mean


# ---------------------------------------------------------------- base-to-new
def collect_base2new(root):
    """{(shots, trainer, cfg): {dataset: {"base": [...], "new": [...]}}} from ROOT/train_base
    (whose final test is on the base classes) and ROOT/test_new."""
    results = defaultdict(lambda: defaultdict(lambda: {"base": [], "new": []}))
    for split, key, eval_only in (("train_base", "base", False), ("test_new", "new", True)):
        pattern = osp.join(root, split, "*", "shots_*", "*", "*", "seed*")
        for run_dir in sorted(glob.glob(pattern)):
            parts = run_dir.split(os.sep)
            dataset, shots, trainer, cfg = parts[-5], parts[-4], parts[-3], parts[-2]
            accuracy, _ = run_accuracy(run_dir, eval_only)
            if accuracy is None:
                print(f"No result in {run_dir} (unfinished run?)", file=sys.stderr)
                continue
            results[(shots, trainer, cfg)][dataset][key].append(accuracy)
    return results


def collect_fewshot(root):
    """{trainer: {dataset: {shots: [accuracy per seed]}}} from the few-shot layout
    ROOT/<dataset>/<trainer>/<cfg>_<K>shots/seed<N> (scripts/protocols.sh: fewshot)."""
    results = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run_dir in sorted(glob.glob(osp.join(root, "*", "*", "*shots", "seed*"))):
        parts = run_dir.split(os.sep)
        match = FEWSHOT_DIR.match(parts[-2])
        if match is None or parts[-4] == "evaluation":
            continue
        accuracy, _ = run_accuracy(run_dir)
        if accuracy is None:
            print(f"No result in {run_dir} (unfinished run?)", file=sys.stderr)
            continue
        results[parts[-3]][parts[-4]][int(match["shots"])].append(accuracy)
    return results


def collect_zeroshot(root):
    """{dataset: accuracy} of zero-shot CLIP on all classes, from the layout of
    scripts/protocols.sh's zeroshot: ROOT/ZeroshotCLIP*/<cfg>/<dataset>/all."""
    found = {}
    for run_dir in sorted(glob.glob(osp.join(root, "Zeroshot*", "*", "*", "all"))):
        accuracy, _ = run_accuracy(run_dir, eval_only=True)
        if accuracy is not None:
            found[run_dir.split(os.sep)[-2]] = accuracy
    return found


def dataset_sort_key(name):
    return (DATASET_ORDER.index(name), "") if name in DATASET_ORDER else (len(DATASET_ORDER), name)


def base2new_records(per_dataset, ci95=False):
    """One record per dataset, then the average over the datasets that have both."""
    records, base_means, new_means = [], [], []
    for dataset in sorted(per_dataset, key=dataset_sort_key):
        base, new = per_dataset[dataset]["base"], per_dataset[dataset]["new"]
        record = {"dataset": dataset, "seeds_base": len(base), "seeds_new": len(new)}
        for key, values in (("base", base), ("new", new)):
            record[key] = float(np.mean(values)) if values else None
            record[key + "_std"] = spread(values, ci95) if values else None
        record["H"] = None
        if base and new:
            base_means.append(record["base"])
            new_means.append(record["new"])
            record["H"] = harmonic_mean(record["base"], record["new"])
        records.append(record)
    if base_means:
        base_avg, new_avg = float(np.mean(base_means)), float(np.mean(new_means))
        records.append({"dataset": f"average ({len(base_means)} datasets)", "seeds_base": None,
                        "seeds_new": None, "base": base_avg, "base_std": None, "new": new_avg,
                        "new_std": None, "H": harmonic_mean(base_avg, new_avg)})
    return records


def render(records, fmt, first_column="dataset"):
    if fmt == "csv":
        fields = ["dataset", "seeds_base", "seeds_new", "base", "base_std", "new", "new_std", "H"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([first_column] + fields[1:])
        for record in records:
            writer.writerow(["" if record[f] is None else
                             f"{record[f]:.2f}" if isinstance(record[f], float) else record[f]
                             for f in fields])
        return buffer.getvalue().rstrip("\n")

    def cell(record, key):
        if record[key] is None:
            return "-"
        std = record.get(key + "_std")
        return f"{record[key]:.2f}" if std is None else f"{record[key]:.2f} +- {std:.2f}"

    rows = [[r["dataset"], "" if r["seeds_base"] is None else f"{r['seeds_base']}/{r['seeds_new']}",
             cell(r, "base"), cell(r, "new"), cell(r, "H")] for r in records]
    return tabulate(rows, headers=[first_column, "seeds", "base", "new", "H"],
                    tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)


def print_base2new(root, args):
    results = collect_base2new(root)
    if not results:
        raise SystemExit(
            f"parse_test_res.py: error: no base-to-new runs under {root} (expected "
            f"{root}/train_base/<dataset>/shots_<K>/<trainer>/<cfg>/seed<N>/log.txt and "
            f"{root}/test_new/...)")
    for (shots, trainer, cfg), per_dataset in sorted(results.items()):
        records = base2new_records(per_dataset, args.ci95)
        title = f"{trainer} / {cfg} / {shots.replace('_', ' ')}"
        print(f"# {title}" if args.format == "csv" else f"\n{title}\n")
        print(render(records, args.format))
    if len(results) > 1:
        title = "Summary: average over datasets, per method"
        print(f"# {title}" if args.format == "csv" else f"\n{title}\n")
        print(render(summary_records(results, args.ci95), args.format, "method"))
    if args.compare == "published":
        rows = base2new_comparison(results, load_published(), args.ci95)
        title = "Published numbers (ViT-B/16, 16 shots) beside the measured means"
        print(f"# {title}" if args.format == "csv" else f"\n{title}\n")
        print(render_comparison(rows, args.format) if rows else
              "(no measured dataset and method is in docs/published_results.csv)")


def summary_records(results, ci95=False):
    """One record per (trainer, cfg, shots): its average row over datasets."""
    records = []
    for (shots, trainer, cfg), per_dataset in sorted(results.items(), key=lambda kv: kv[0][1]):
        average = base2new_records(per_dataset, ci95)[-1]
        if not average["dataset"].startswith("average"):
            continue
        records.append({**average, "dataset": f"{trainer} ({cfg}, {shots.replace('_', ' ')})",
                        "seeds_base": min(len(v["base"]) for v in per_dataset.values()),
                        "seeds_new": min(len(v["new"]) for v in per_dataset.values())})
    return records


# ---------------------------------------------------------------- published numbers
def load_published(path=PUBLISHED):
    """The published numbers: a list of dicts with the CSV's columns, value a float."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["value"] = float(row["value"])
    return rows


def published_value(rows, method, dataset, metric, protocol="base2new"):
    """(value, paper) for ``method`` on ``dataset``: from the method's own paper when it
    reports it, else from the first paper in the table that does; None if none does."""
    found = [r for r in rows if r["method"] == method and r["dataset"] == dataset
             and r["metric"] == metric and r["protocol"] == protocol]
    if not found:
        return None
    own = [r for r in found if r["paper"] == method]
    row = (own or found)[0]
    return row["value"], f"{row['paper']}, {row['table']}"


def compare_records(trainer, records, published):
    """One record per measured (dataset, metric) that a paper reports: the measured
    mean and std, the published value, the difference and whether the difference is
    within the seed spread."""
    out = []
    for record in records:
        dataset = record["dataset"]
        if dataset.startswith("average"):
            if f"({len(DATASET_ORDER)} datasets)" not in dataset:
                continue  # an average over fewer datasets is not the papers' average
            dataset = "average"
        for metric in ("base", "new", "H"):
            if record[metric] is None:
                continue
            found = published_value(published, trainer, dataset, metric)
            if found is None:
                continue
            value, source = found
            diff = record[metric] - value
            std = record.get(metric + "_std")
            seeds = record["seeds_base"] if metric == "base" else record["seeds_new"]
            if std is None or not seeds or seeds < 2:
                verdict = "spread unknown (< 2 seeds)"
            elif abs(diff) <= std:
                verdict = "not significant (within seed spread)"
            else:
                verdict = "outside seed spread"
            out.append({"method": trainer, "dataset": dataset, "metric": metric,
                        "measured": record[metric], "std": std, "published": value,
                        "difference": diff, "verdict": verdict, "source": source})
    return out


def render_comparison(rows, fmt):
    headers = ["method", "dataset", "metric", "measured", "published", "difference", "verdict",
               "source"]
    table = [[r["method"], r["dataset"], r["metric"],
              f"{r['measured']:.2f}" + ("" if r["std"] is None else f" +- {r['std']:.2f}"),
              f"{r['published']:.2f}", f"{r['difference']:+.2f}", r["verdict"], r["source"]]
             for r in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(table)
        return buffer.getvalue().rstrip("\n")
    return tabulate(table, headers=headers, disable_numparse=True,
                    tablefmt="github" if fmt == "markdown" else "simple")


def base2new_comparison(results, published, ci95=False):
    rows = []
    for (_, trainer, _), per_dataset in sorted(results.items()):
        rows += compare_records(trainer, base2new_records(per_dataset, ci95), published)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=str, help="path to directory")
    parser.add_argument("--ci95", action="store_true", help=r"compute 95%% confidence interval")
    parser.add_argument("--test-log", action="store_true", help="parse test-only logs")
    parser.add_argument("--multi-exp", action="store_true", help="parse multiple experiments")
    parser.add_argument("--base2new", action="store_true",
                        help="base / new / harmonic-mean table of a base-to-new run tree")
    parser.add_argument("--format", choices=["table", "markdown", "csv"], default="table",
                        help="output of --base2new")
    parser.add_argument("--compare", choices=["published"],
                        help="with --base2new: each measured mean beside the published number "
                             f"({osp.relpath(PUBLISHED, osp.dirname(PUBLISHED) + '/..')})")
    args = parser.parse_args(argv)
    if args.compare and not args.base2new:
        parser.error("--compare published goes with --base2new")
    if not osp.isdir(args.directory):
        raise SystemExit(f"parse_test_res.py: error: {args.directory} is not a folder")

    if args.base2new:
        print_base2new(args.directory, args)
    elif args.multi_exp:
        means = [summarize(d, args) for d in seed_dirs(args.directory)]
        print("Average performance")
        print(f"* accuracy: {np.mean(means):.2f}%")
    else:
        summarize(args.directory, args)


if __name__ == "__main__":
    main()
