"""The results tools (figures, t-SNE, prompt words, published comparison, report) on one
run tree written by real train.py runs: fake Caltech101, tiny ViT CLIP, 1 epoch."""
import csv
import io
import os.path as osp
import sys
from collections import defaultdict
from contextlib import redirect_stdout

import numpy as np
import pytest

from tests.helpers import parse_accuracy, tiny_opts

B2N_CFG = {"CoOp": ("CoOp", "vit_b16_ctxv1"), "E2MIM": ("E2MIM", "vit_b16_ep50_ctxv1"),
           "ZeroshotCLIP": ("CoOp", "vit_b16")}


def train_py(argv):
    """train.py's entry point, in this process (torch imported once for all runs); the
    run's log tees stdout, which is restored afterwards."""
    import train

    old = sys.stdout
    try:
        with redirect_stdout(io.StringIO()):
            train.run([str(a) for a in argv])
    finally:
        sys.stdout = old


@pytest.fixture(scope="module")
def tree(tmp_path_factory, tiny_clip):
    from tests import dataset_trees

    base = tmp_path_factory.mktemp("results_tree")
    data, out = str(base / "data"), str(base / "output")
    dataset_trees.caltech101(data, per_class=6)
    checkpoint = tiny_clip["tiny-ViT"]

    def run(trainer, cfg_dir, cfg, out_dir, *opts, seed=1):
        train_py(["--root", data, "--seed", seed, "--trainer", trainer,
                  "--dataset-config-file", "configs/datasets/caltech101.yaml",
                  "--config-file", f"configs/trainers/{cfg_dir}/{cfg}.yaml", "--output-dir", out_dir,
                  *opts, *tiny_opts(checkpoint), "OPTIM.MAX_EPOCH", 1])

    b2n = osp.join(out, "base2new")
    runs = {}
    for trainer, seeds in (("CoOp", (1, 2)), ("E2MIM", (1,)), ("ZeroshotCLIP", (1,))):
        cfg_dir, cfg = B2N_CFG[trainer]
        for seed in seeds:
            common = f"caltech101/shots_2/{trainer}/{cfg}/seed{seed}"
            base_dir, new_dir = osp.join(b2n, "train_base", common), osp.join(b2n, "test_new", common)
            shots = ["DATASET.NUM_SHOTS", 2]
            if trainer == "ZeroshotCLIP":
                run(trainer, cfg_dir, cfg, base_dir, "--eval-only", *shots,
                    "DATASET.SUBSAMPLE_CLASSES", "base", seed=seed)
                run(trainer, cfg_dir, cfg, new_dir, "--eval-only", *shots,
                    "DATASET.SUBSAMPLE_CLASSES", "new", seed=seed)
            else:
                run(trainer, cfg_dir, cfg, base_dir, *shots, "DATASET.SUBSAMPLE_CLASSES", "base",
                    seed=seed)
                run(trainer, cfg_dir, cfg, new_dir, "--eval-only", "--model-dir", base_dir,
                    "--load-epoch", 1, *shots, "DATASET.SUBSAMPLE_CLASSES", "new", seed=seed)
            runs[(trainer, seed)] = (base_dir, new_dir)
    fewshot = {}
    for k, cfg in ((1, "vit_b16_ep50"), (2, "vit_b16_ep100")):
        fewshot[k] = osp.join(out, "caltech101", "CoOp", f"{cfg}_{k}shots", "seed1")
        run("CoOp", "CoOp", cfg, fewshot[k], "DATASET.NUM_SHOTS", k)
    zero_shot = osp.join(out, "ZeroshotCLIP", "vit_b16", "caltech101", "all")
    run("ZeroshotCLIP", "CoOp", "vit_b16", zero_shot, "--eval-only")
    # CoOp from "a photo of a", not trained: learning rate 0 and no warm-up
    untrained = osp.join(out, "untrained_coop")
    run("CoOp", "CoOp", "vit_b16_ctxv1", untrained, "DATASET.NUM_SHOTS", 1, "OPTIM.LR", 0.0,
        "OPTIM.WARMUP_EPOCH", 0)
    return {"out": out, "base2new": b2n, "runs": runs, "fewshot": fewshot, "zero_shot": zero_shot,
            "untrained": untrained, "figures": str(base / "figures")}


def log_accuracy(run_dir):
    with open(osp.join(run_dir, "log.txt")) as f:
        return parse_accuracy(f.read())


def assert_written(paths):
    assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "pdf"]
    for path in paths:
        assert osp.getsize(path) > 1000, path


def test_base2new_bars_are_the_seed_means_with_std_error_bars(tree):
    from tools import plot_base2new
    from tools.plotting import close

    fig, paths = plot_base2new.plot(tree["base2new"], osp.join(tree["figures"], "b2n"))
    assert_written(paths)
    ax = fig.axes[0]
    assert ax.get_title() == "caltech101"
    assert ax.get_legend() is None  # one legend, beside the axes, never over the bars
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["ZeroshotCLIP", "CoOp", "E2MIM"]
    fig.canvas.draw()
    legend_box = legend.get_window_extent()
    assert all(legend_box.x0 >= a.get_window_extent().x1 for a in fig.axes if a.get_visible())
    panels = [a.get_title() for a in fig.axes if a.get_visible()]
    assert panels[-1].startswith("average") if len(panels) > 1 else panels == ["caltech101"]
    bars = {c.get_label(): c for c in ax.containers if hasattr(c, "patches")}
    for trainer, seeds in (("CoOp", (1, 2)), ("E2MIM", (1,)), ("ZeroshotCLIP", (1,))):
        base = [log_accuracy(tree["runs"][(trainer, s)][0]) for s in seeds]
        new = [log_accuracy(tree["runs"][(trainer, s)][1]) for s in seeds]
        b, n = np.mean(base), np.mean(new)
        heights = [p.get_height() for p in bars[trainer].patches]
        np.testing.assert_allclose(heights, [b, n, 2 * b * n / (b + n)], atol=1e-9)
        segments = bars[trainer].errorbar.lines[2][0].get_segments()
        spans = [seg[1][1] - seg[0][1] for seg in segments]
        np.testing.assert_allclose(spans[:2], [2 * np.std(base), 2 * np.std(new)], atol=1e-9)
    fills = [bars[t].patches[0].get_facecolor() for t in ("ZeroshotCLIP", "CoOp", "E2MIM")]
    assert len(set(fills)) == 3  # every series its own fill
    close(fig)


def test_thirteen_series_have_thirteen_fills_and_hatches():
    from tools.plotting import style

    looks = [style(i) for i in range(13)]
    assert len({look["fill"] for look in looks}) == 13
    assert len({look["hatch"] for look in looks[:8]}) == 8


def test_fewshot_curve_and_zero_shot_marker(tree):
    from tools import plot_fewshot
    from tools.plotting import close

    fig, paths = plot_fewshot.plot(tree["out"], osp.join(tree["figures"], "fewshot"))
    assert_written(paths)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["CoOp"].get_xdata()) == [1, 2]
    np.testing.assert_allclose(lines["CoOp"].get_ydata(),
                               [log_accuracy(tree["fewshot"][k]) for k in (1, 2)])
    assert list(lines["Zero-shot CLIP"].get_xdata()) == [0]
    assert lines["Zero-shot CLIP"].get_ydata()[0] == log_accuracy(tree["zero_shot"])
    close(fig)


def test_training_curves_read_the_epoch_averages_and_the_mi_floor(tree):
    from tools import plot_training
    from tools.plotting import close
    from trainers.defaults import default_cfg
    from trainers.mutual_information import INDEPENDENCE_FLOOR

    run = tree["runs"][("E2MIM", 1)][0]
    fig, paths = plot_training.plot([run], osp.join(tree["figures"], "training"), labels=["E2MIM"])
    assert_written(paths)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert {"total loss", "MI estimate", "training accuracy (%)", "learning rate"} <= set(panels)
    with open(osp.join(run, "log.txt")) as f:
        last = [line for line in f if line.startswith("epoch [1/1] batch")][-1]
    mi_average = float(last.split(" mi ")[1].split("(")[1].split(")")[0])
    lines = {line.get_label(): line for line in panels["MI estimate"].get_lines()}
    assert list(lines["E2MIM"].get_ydata()) == [mi_average]
    floor = [label for label in lines if label.startswith("independence floor")]
    estimator = default_cfg().TRAINER.E2MIM.ESTIMATOR  # the run's: E2MIM's default
    assert len(floor) == 1 and lines[floor[0]].get_ydata()[0] == pytest.approx(INDEPENDENCE_FLOOR[estimator])
    close(fig)


def test_tsne_draws_every_new_class_image_and_both_prompts_seeded(tree):
    from tools import tsne
    from tools.plotting import close

    run = tree["runs"][("CoOp", 1)][0]
    fig, paths = tsne.plot(run, osp.join(tree["figures"], "tsne"), "new", seed=1)
    assert_written(paths)
    groups = defaultdict(list)
    for collection in fig.axes[0].collections:
        groups[collection.get_gid().split("|")[0]].append(collection.get_offsets())
    with open(osp.join(tree["runs"][("CoOp", 1)][1], "log.txt")) as f:
        total = [int(line.split(":")[1]) for line in f if line.startswith("* total:")][-1]
    assert sum(len(o) for o in groups["images"]) == total  # the new-class test images
    assert len(groups["images"]) == 2  # two new classes, one series each
    assert len(groups["hand-crafted"][0]) == 2 and len(groups["learned"][0]) == 2
    points = np.random.default_rng(0).normal(size=(12, 8))
    np.testing.assert_array_equal(tsne.embed(points, seed=1), tsne.embed(points, seed=1))
    close(fig)


def test_interpret_untrained_coop_gives_a_photo_of_a_at_distance_zero(tree, capsys):
    from tools import interpret_prompt

    out = osp.join(tree["figures"], "words.csv")
    interpret_prompt.main(["--model-dir", tree["untrained"], "--topk", "2", "--out", out])
    with open(out) as f:
        rows = [r for r in csv.DictReader(f) if r["rank"] == "1"]
    assert [r["token"] for r in rows] == ["a", "photo", "of", "a"]
    assert [float(r["distance"]) for r in rows] == [0.0] * 4
    assert "photo" in capsys.readouterr().out


def test_compare_published_puts_the_paper_number_beside_the_mean(tree, capsys):
    import parse_test_res

    parse_test_res.main([tree["base2new"], "--base2new", "--compare", "published",
                         "--format", "csv"])
    text = capsys.readouterr().out.split("# Published numbers")[1]
    rows = {(r["method"], r["dataset"], r["metric"]): r
            for r in csv.DictReader(io.StringIO(text.split("\n", 1)[1]))}
    coop_base = [log_accuracy(tree["runs"][("CoOp", s)][0]) for s in (1, 2)]
    row = rows[("CoOp", "caltech101", "base")]
    assert float(row["published"]) == 98.00 and row["source"].startswith("CoCoOp, Table 1")
    assert float(row["difference"]) == pytest.approx(np.mean(coop_base) - 98.00, abs=0.006)
    expected = ("not significant" if abs(np.mean(coop_base) - 98.0) <= np.std(coop_base)
                else "outside seed spread")
    assert row["verdict"].startswith(expected)
    assert rows[("ZeroshotCLIP", "caltech101", "new")]["published"] == "94.00"
    assert rows[("ZeroshotCLIP", "caltech101", "new")]["verdict"].startswith("spread unknown")
    assert not any(key[0] == "E2MIM" for key in rows)  # no published E2MIM row to compare


def test_report_links_tables_figures_and_configs(tree):
    from tools import report

    out = osp.join(tree["out"], "report.md")
    report.main([tree["out"], "--out", out, "--training", tree["runs"][("E2MIM", 1)][0]])
    text = open(out).read()
    assert "configs/trainers/CoOp/vit_b16_ctxv1.yaml" in text
    assert "| caltech101 |" in text and "98.00" in text  # measured table + published number
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 3  # base/new bars, few-shot curves, training curves
    for link in links:
        assert osp.getsize(osp.join(tree["out"], link)) > 1000


@pytest.mark.parametrize("tool, args, expected", [
    ("plot_base2new", ["{empty}"], "no base-to-new runs under"),
    ("plot_fewshot", ["{empty}"], "no few-shot runs under"),
    ("report", ["{empty}"], "no finished runs in"),
    ("plot_training", ["{empty}"], "has no log.txt"),
    ("interpret_prompt", ["--model-dir", "{empty}"], "has no log.txt"),
    ("tsne", ["--model-dir", "{empty}"], "has no log.txt"),
])
def test_a_tree_without_what_a_tool_needs_gives_one_line(tmp_path, tool, args, expected):
    import importlib

    main = importlib.import_module(f"tools.{tool}").main
    with pytest.raises(SystemExit) as stop:
        main([a.format(empty=str(tmp_path)) for a in args])
    message = str(stop.value)
    assert message.startswith(f"{tool}.py: error: ") and expected in message
    assert "\n" not in message


def test_published_per_dataset_rows_average_to_the_papers_average_rows():
    import parse_test_res

    rows = parse_test_res.load_published()
    values = defaultdict(dict)
    for r in rows:
        values[(r["paper"], r["protocol"], r["method"], r["metric"])][r["dataset"]] = r["value"]
    checked = 0
    for (paper, protocol, method, metric), per_dataset in values.items():
        source = () if protocol == "base2new" else ("imagenet",)  # transfer: targets only
        measured = [v for d, v in per_dataset.items() if d != "average" and d not in source]
        if protocol == "base2new" and len(per_dataset) > 1:
            assert len(measured) == 11, (paper, method, metric)
            if metric in ("base", "new"):
                assert np.mean(measured) == pytest.approx(per_dataset["average"], abs=0.01)
                checked += 1
        elif protocol != "base2new":  # the average over the target datasets
            assert np.mean(measured) == pytest.approx(per_dataset["average"], abs=0.01)
            checked += 1
    key = {k: v for k, v in values.items() if k[1] == "base2new"}
    for (paper, _, method, metric), per_dataset in key.items():
        if metric == "H":
            for dataset, h in per_dataset.items():
                b = key[(paper, "base2new", method, "base")][dataset]
                n = key[(paper, "base2new", method, "new")][dataset]
                assert h == pytest.approx(2 * b * n / (b + n), abs=0.011), (paper, method, dataset)
    # every method of the base-to-new tables of CoCoOp, MaPLe and PromptSRC, per dataset
    for paper, methods in (("CoCoOp", ["ZeroshotCLIP", "CoOp", "CoCoOp"]),
                           ("MaPLe", ["ZeroshotCLIP", "CoOp", "CoCoOp", "MaPLe"]),
                           ("PromptSRC", ["ZeroshotCLIP", "CoOp", "CoCoOp", "MaPLe", "PromptSRC"])):
        for method in methods:
            assert len(values[(paper, "base2new", method, "H")]) == 12, (paper, method)
    assert checked == 2 * 12 + 5  # 3 + 4 + 5 methods with per-dataset rows; 5 transfer rows
