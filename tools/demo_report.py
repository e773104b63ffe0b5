"""Write the demo's report: a Markdown base / new / H table per method and a bar chart (PNG).

    python tools/demo_report.py output/demo/base2new output/demo/report.md

The numbers come from parse_test_res.py's reading of the same run tree.
"""
import argparse
import os.path as osp
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from parse_test_res import collect_base2new, render, summary_records

BAR_COLOURS = {"base": (66, 133, 244), "new": (234, 67, 53), "H": (52, 168, 83)}


def method_name(record):
    return record["dataset"].split(" (")[0]


def bar_chart(records, path, height=360, bar=18, gap=34):
    """Grouped bars (base, new, H) per method, 0-100 %, drawn with PIL."""
    width = 60 + len(records) * (3 * bar + gap) + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    top, bottom = 30, height - 50
    for value in range(0, 101, 20):  # axis and grid
        y = bottom - (bottom - top) * value / 100
        draw.line([(50, y), (width - 10, y)], fill=(225, 225, 225))
        draw.text((18, y - 6), f"{value}", fill="black")
    for i, record in enumerate(records):
        x0 = 60 + i * (3 * bar + gap)
        for j, key in enumerate(("base", "new", "H")):
            value = record[key] or 0.0
            x = x0 + j * bar
            y = bottom - (bottom - top) * value / 100
            draw.rectangle([x, y, x + bar - 2, bottom], fill=BAR_COLOURS[key])
            draw.text((x, y - 12), f"{value:.0f}", fill="black")
        draw.text((x0, bottom + 8), method_name(record)[:12], fill="black")
    for j, key in enumerate(("base", "new", "H")):
        draw.rectangle([60 + 70 * j, 8, 72 + 70 * j, 20], fill=BAR_COLOURS[key])
        draw.text((76 + 70 * j, 8), key, fill="black")
    image.save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", help="the base2new folder of the demo's output")
    parser.add_argument("report", help="the Markdown file to write (the PNG goes beside it)")
    args = parser.parse_args(argv)
    records = summary_records(collect_base2new(args.runs))
    if not records:
        raise SystemExit(f"demo_report.py: error: no finished base-to-new runs in {args.runs}")
    chart = osp.splitext(args.report)[0] + ".png"
    bar_chart(records, chart)
    seeds = max(r["seeds_base"] or 0 for r in records)
    lines = ["# SynthWorld base-to-new demo", "",
             f"Base and new accuracy (%) and their harmonic mean H, {seeds} seed(s); "
             "16 shots per base class; SynthCLIP-RN backbone.", "",
             render(records, "markdown", "method"), "", f"![base / new / H]({osp.basename(chart)})",
             ""]
    with open(args.report, "w") as f:
        f.write("\n".join(lines))
    print(f"Wrote {args.report} and {chart}")


if __name__ == "__main__":
    main()
