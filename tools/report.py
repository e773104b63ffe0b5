"""One Markdown report of an output tree: results tables (with the published numbers
where the papers report the same dataset), the figures, and the config of each number.

    python -m tools.report OUTPUT_TREE [--out OUTPUT_TREE/report.md] [--title TITLE]
        [--tsne RUN ...] [--tsne-subsample new] [--training RUN ...]

OUTPUT_TREE is the OUTPUT folder of the protocol scripts: base-to-new runs under
base2new/, few-shot runs under <dataset>/<trainer>/<cfg>_<K>shots/. Figures go to
OUTPUT_TREE/figures/ (PNG, linked; PDF beside them).
"""
import argparse
import os.path as osp

from parse_test_res import (
    base2new_comparison,
    base2new_records,
    collect_base2new,
    collect_fewshot,
    load_published,
    render,
    render_comparison,
    summary_records,
)
from tools import plot_base2new, plot_fewshot, plot_training, tsne
from tools.plotting import close


def figure_link(path, report_dir, caption):
    return f"![{caption}]({osp.relpath(path, report_dir)})"


def base2new_section(root, report_dir, figures):
    results = collect_base2new(root)
    lines = ["## Base-to-new generalisation", ""]
    if len(results) > 1:
        lines += ["Average over datasets, per method (mean over seeds):", "",
                  render(summary_records(results), "markdown", "method"), ""]
    for (shots, trainer, cfg), per_dataset in sorted(results.items()):
        lines += [f"### {trainer} ({shots.replace('_', ' ')})", "",
                  f"Config: `configs/trainers/{trainer}/{cfg}.yaml`, runs: "
                  f"`{osp.relpath(osp.join(root, 'train_base'), report_dir)}/<dataset>/{shots}/"
                  f"{trainer}/{cfg}/seed<N>` (base) and `test_new/...` (new).", "",
                  render(base2new_records(per_dataset), "markdown"), ""]
    comparison = base2new_comparison(results, load_published())
    lines += ["### Published numbers beside the measured means", ""]
    lines += ([render_comparison(comparison, "markdown"),
               "", "Published numbers: `docs/published_results.csv` (ViT-B/16, 16 shots; cited "
               "per row). A difference within the std over seeds is not significant.", ""]
              if comparison else ["No measured dataset and method is in "
                                  "`docs/published_results.csv`.", ""])
    fig, paths = plot_base2new.plot(root, osp.join(figures, "base2new"))
    close(fig)
    lines += [figure_link(paths[0], report_dir, "base / new / H with error bars over seeds"),
              "", f"(PDF: `{osp.relpath(paths[1], report_dir)}`)", ""]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree", help="the OUTPUT folder of the protocol scripts")
    parser.add_argument("--out", default="", help="the Markdown file (default: TREE/report.md)")
    parser.add_argument("--title", default="Results")
    parser.add_argument("--intro", default="", help="a paragraph under the title")
    parser.add_argument("--tsne", nargs="*", default=[], help="training runs to draw a t-SNE of")
    parser.add_argument("--tsne-subsample", choices=["base", "new", "all"], default="new")
    parser.add_argument("--training", nargs="*", default=[], help="runs whose curves to draw")
    parser.add_argument("--section", nargs="*", default=[],
                        help="Markdown files to include after the results (e.g. the fidelity "
                             "report of python -m tools.world_check --markdown)")
    args = parser.parse_args(argv)
    tree = args.tree
    out = args.out or osp.join(tree, "report.md")
    report_dir = osp.dirname(osp.abspath(out))
    figures = osp.join(tree, "figures")
    lines = [f"# {args.title}", ""] + ([args.intro, ""] if args.intro else [])
    base2new_root = osp.join(tree, "base2new")
    have_base2new = bool(collect_base2new(base2new_root))
    have_fewshot = bool(collect_fewshot(tree))
    if not (have_base2new or have_fewshot):
        raise SystemExit(f"report.py: error: no finished runs in {tree}: expected base-to-new runs "
                         f"in {base2new_root}/train_base and test_new, or few-shot runs in "
                         f"{tree}/<dataset>/<trainer>/<cfg>_<K>shots/seed<N>")
    if have_base2new:
        lines += base2new_section(base2new_root, report_dir, figures)
    for section in args.section:
        with open(section) as f:
            lines += [f.read(), ""]
    if have_fewshot:
        fig, paths = plot_fewshot.plot(tree, osp.join(figures, "fewshot"))
        close(fig)
        lines += ["## Few-shot learning", "",
                  figure_link(paths[0], report_dir, "accuracy against shots"), ""]
    if args.tsne:
        lines += [f"## t-SNE of test features ({args.tsne_subsample} classes)", "",
                  "Images coloured by class; stars: the hand-crafted prompt's text features; "
                  "diamonds: the learned prompt's.", ""]
        for run in args.tsne:
            name = "_".join(osp.normpath(run).split(osp.sep)[-3:])
            fig, paths = tsne.plot(run, osp.join(figures, f"tsne_{name}"), args.tsne_subsample)
            close(fig)
            lines += [f"`{osp.relpath(run, report_dir)}`", "",
                      figure_link(paths[0], report_dir, f"t-SNE {name}"), ""]
    if args.training:
        fig, paths = plot_training.plot(args.training, osp.join(figures, "training"))
        close(fig)
        lines += ["## Training curves", "", figure_link(paths[0], report_dir, "training curves"), ""]
    from dassl.utils import atomic_write

    with atomic_write(out, "w") as f:
        f.write("\n".join(lines))
    print(f"Wrote {out} (figures in {figures})")


if __name__ == "__main__":
    main()
