"""Each loss term, the learning rate and the training accuracy against epoch.

    python -m tools.plot_training RUN [RUN ...] [--out output/figures/training]

RUN is a training run's output folder. The curves are the epoch averages train.py
prints at each epoch's last batch (read from the run's log.txt and, for a resumed run,
its later log.txt-* files). E2MIM's MI estimate is drawn against the independence
floor of its estimator (JSD: -2 log 2; DV and InfoNCE: 0). Writes OUT.png and OUT.pdf.
"""
import argparse
import os.path as osp
import re

from runs.state import log_files
from tools.plotting import close, new_figure, save_figure, style

BATCH_LINE = re.compile(r"^epoch \[(\d+)/\d+\] batch \[(\d+)/(\d+)\] (.*)$")
METER = re.compile(r"(\w+) (-?[\d.]+(?:e[-+]?\d+)?) \((-?[\d.]+(?:e[-+]?\d+)?)\)")
LR = re.compile(r" lr (-?[\d.]+(?:e[-+]?\d+)?)")
NOT_TERMS = {"time", "data"}
TITLES = {"loss": "total loss", "loss_mix": "Mixup loss (soft CE)", "mi": "MI estimate",
          "acc": "training accuracy (%)", "lr": "learning rate"}


def epoch_curves(run_dir):
    """{term: {epoch: epoch average}} from the run's logs, oldest log first (a resumed
    run's later log wins for the epochs it redid)."""
    paths = list(reversed(log_files(run_dir)))
    if not paths:
        raise SystemExit(f"plot_training.py: error: {run_dir} has no log.txt (is it a train.py "
                         "output folder?)")
    curves = {}
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                match = BATCH_LINE.match(line.strip())
                if not match or match[2] != match[3]:
                    continue  # only each epoch's last batch carries the epoch average
                epoch = int(match[1])
                for name, _, average in METER.findall(match[4]):
                    if name not in NOT_TERMS:
                        curves.setdefault(name, {})[epoch] = float(average)
                lr = LR.search(match[4])
                if lr:
                    curves.setdefault("lr", {})[epoch] = float(lr[1])
    if not curves:
        raise SystemExit(f"plot_training.py: error: the logs of {run_dir} hold no training "
                         "progress lines (an --eval-only run?)")
    return curves


def independence_floor(run_dir):
    from runs.saved_config import load_run_config
    from trainers.mutual_information import INDEPENDENCE_FLOOR

    cfg = load_run_config(run_dir)
    if cfg.TRAINER.NAME != "E2MIM":
        return None
    return INDEPENDENCE_FLOOR[cfg.TRAINER.E2MIM.ESTIMATOR]


def plot(run_dirs, out_base, labels=None):
    runs = {label: epoch_curves(d) for label, d in zip(labels or run_dirs, run_dirs)}
    terms = []
    for curves in runs.values():
        terms += [t for t in curves if t not in terms]
    terms = [t for t in TITLES if t in terms] + [t for t in terms if t not in TITLES]
    fig, axes = new_figure(len(terms), columns=3)
    for ax, term in zip(axes, terms):
        for i, (label, curves) in enumerate(runs.items()):
            if term not in curves:
                continue
            look = style(i)
            epochs = sorted(curves[term])
            ax.plot(epochs, [curves[term][e] for e in epochs], marker=look["marker"],
                    linestyle=look["linestyle"], color=look["color"], label=label)
        if term == "mi":
            floors = {independence_floor(d) for d in run_dirs} - {None}
            for floor in floors:
                ax.axhline(floor, color="black", linestyle=":", label=f"independence floor {floor:.3f}")
        ax.set_title(TITLES.get(term, term))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return fig, save_figure(fig, out_base)


def main(argv=None):
    from datasets.errors import ConfigError

    try:
        run(argv)
    except ConfigError as e:
        raise SystemExit(f"plot_training.py: error: {e}") from None


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="training run folders")
    parser.add_argument("--out", default="", help="output path without extension "
                        "(default: RUN/training, beside the first run's log)")
    args = parser.parse_args(argv)
    fig, paths = plot(args.runs, args.out or osp.join(args.runs[0], "training"))
    close(fig)
    print("Wrote " + " and ".join(paths))


if __name__ == "__main__":
    main()
