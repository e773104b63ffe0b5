"""What every figure tool shares: matplotlib without a display, grayscale-safe styles,
the order methods are shown in, and writing a figure as PNG and PDF.

Styles never rely on colour alone: each series also gets its own marker, line style
and hatch, so a figure printed in grayscale still tells the series apart.
"""
import os
import os.path as osp

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from dassl.utils import atomic_write  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
GRAYS = ("0.0", "0.35", "0.55", "0.75", "0.2", "0.45", "0.65", "0.85")
# Fills of bar series: colour-blind-safe, no two alike (Paul Tol's "muted" scheme, then
# four of his "vibrant" ones and a dark grey; https://personal.sron.nl/~pault/), each with
# its own hatch as well.
FILLS = ("#DDDDDD", "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77",
         "#CC6677", "#882255", "#AA4499", "#EE7733", "#0077BB", "#EE3377", "#555555")
HEADLINE = "E2MIM"


def style(index):
    """Marker, line style, hatch and a gray level for the ``index``-th series; the
    colour comes from matplotlib's default cycle, the rest survives grayscale."""
    return {"marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINESTYLES[index % len(LINESTYLES)],
            "hatch": HATCHES[index % len(HATCHES)],
            "gray": GRAYS[index % len(GRAYS)],
            "color": f"C{index % 10}",
            "fill": FILLS[index % len(FILLS)]}


def is_zero_shot(method):
    return method.startswith("Zeroshot")


def method_order(methods):
    """Zero-shot CLIP first, then the baselines (in the given order), then E2MIM."""
    methods = list(dict.fromkeys(methods))
    first = [m for m in methods if is_zero_shot(m)]
    last = [m for m in methods if m.split(" ")[0] == HEADLINE]
    return first + [m for m in methods if m not in first and m not in last] + last


def save_figure(fig, out_base):
    """Write ``out_base``.png and ``out_base``.pdf (each through a temporary name);
    returns both paths."""
    folder = osp.dirname(osp.abspath(out_base))
    os.makedirs(folder, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = f"{out_base}.{ext}"
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def new_figure(n_panels, width=4.2, height=3.2, columns=4):
    """A figure with ``n_panels`` axes on a grid; unused cells are hidden."""
    cols = min(columns, n_panels)
    rows = (n_panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes[:n_panels])


def close(fig):
    plt.close(fig)
