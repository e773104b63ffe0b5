"""Peak training memory per step against the class count: CoOp (batch 32) and CoCoOp
(batch 4) on the ViT-B/16 shape, with 100 and 1,000 classes.

    python -m benchmarks.memory                       # 100 and 1,000 classes
    python -m benchmarks.memory --quick --json out.json
    torchrun --nproc_per_node 2 benchmarks/memory.py --quick   # adds the per-rank case

Each case is one training step (the trainer's ``forward_backward``) on one batch of an
ImageFolder of generated images whose class names are "<colour> <dish>" (2 to 6 tokens,
like ImageNet's), CLIP of the ViT-B/16 shape with random weights, the context "a photo
of a" (4 tokens):

- ``upstream``: the text encoder over all 77 positions, all classes at once;
- ``truncated``: today's encoder, up to the last end-of-text token;
- ``chunked``: ``TRAIN.TEXT_ENCODER.CHUNK_CLASSES`` (``--chunk``) classes at a time,
  under activation checkpointing;
- ``chunked/rank-of-N``: the same with N processes (under torchrun), the largest
  rank's peak.

Memory is measured as ``train_speed.py`` does (CPU: torch's profiler's allocation
events; CUDA: the allocator's peak). ``upstream`` and ``truncated`` are measured at two
class counts where the text side sets the peak (CoOp 50 and 100, CoCoOp 10 and 20),
``chunked`` at one and two chunks: an unchunked step's activations all
have the class count as a factor (linear), a chunked step holds one chunk's plus every
class's prompts (affine). A case whose extrapolated peak exceeds ``--max-mb`` (default:
half the free memory), or with ``--quick`` one beyond the smallest ``--classes``, is not run: its
peak is the extrapolation, marked ``estimated`` (its time is not given).

JSON: ``{"<method>/<classes>/<case>": {"peak_mem_mb", "ms_per_image", "estimated"}}``.
"""
import os
import os.path as osp
import sys

import torch
from torch import nn

from benchmarks.common import (
    VIT_B16,
    benchmark_parser,
    build_trainer,
    full_context_text_features,
    interleaved,
    machine,
    parse,
    print_table,
    write_json,
)
from benchmarks.text_encoder import FOOD101_NAMES

COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
           "white", "grey", "golden", "silver", "crimson", "violet", "olive", "navy", "teal",
           "ivory", "amber"]
METHODS = {"CoOp": 32, "CoCoOp": 4}  # method -> batch size
# Class counts of the linear extrapolation of the unchunked cases: where the text
# activations, not the image forward (32 ViT-B/16 images for CoOp), set the peak.
SMALL = {"CoOp": (50, 100), "CoCoOp": (10, 20)}


class FullContextTextEncoder(nn.Module):
    """Upstream's text encoder (all 77 positions) around ours."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, prompts, tokenized_prompts):
        return full_context_text_features(self.encoder, prompts, tokenized_prompts)


def parse_args(argv=None):
    parser = benchmark_parser(__doc__, "one timed repetition after the memory pass")
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--chunk", type=int, default=50, help="classes per chunk (default 50)")
    parser.add_argument("--prec", default="fp32", choices=["fp32", "fp16", "amp"],
                        help="the methods' PREC (fp16/amp need a GPU)")
    parser.add_argument("--max-mb", type=float, default=0,
                        help="run no case whose extrapolated peak is larger (default: half "
                             "the free memory)")
    args = parse(parser, argv)
    if args.quick and "--reps" not in (argv if argv is not None else sys.argv):
        args.reps = 1
    return args


def free_mb(device):
    if device == "cuda":
        return torch.cuda.mem_get_info()[0] / 2**20
    with open("/proc/meminfo") as f:
        info = dict(line.split(":") for line in f)
    return int(info["MemAvailable"].split()[0]) / 2**10


def class_names(n_classes):
    if n_classes > len(COLOURS) * len(FOOD101_NAMES):
        raise SystemExit(f"--classes: at most {len(COLOURS) * len(FOOD101_NAMES)}")
    return [f"{colour} {dish}" for colour in COLOURS for dish in FOOD101_NAMES][:n_classes]


def image_folder(workdir, n_classes, train_per_class):
    """DATA root and options of an ImageFolder with ``n_classes`` classes (tiny images,
    resized by the transform), written once."""
    from PIL import Image

    name = f"imagefolder{n_classes}x{train_per_class}"
    folder = osp.join(workdir, "data", name)
    done = osp.join(folder, ".complete")
    if not osp.exists(done):
        image = Image.new("RGB", (8, 8), (120, 60, 200))
        for split, count in (("train", train_per_class), ("val", 1), ("test", 1)):
            for c in range(n_classes):
                os.makedirs(osp.join(folder, split, f"c{c:04d}"), exist_ok=True)
                for i in range(count):
                    image.save(osp.join(folder, split, f"c{c:04d}", f"{i}.png"))
        with open(osp.join(folder, "classnames.txt"), "w") as f:
            f.writelines(f"c{c:04d} {cname}\n" for c, cname in enumerate(class_names(n_classes)))
        open(done, "w").close()
    return osp.join(workdir, "data"), ["DATASET.NAME", "ImageFolder", "DATASET.IMAGEFOLDER.DIR",
                                       name, "DATASET.NUM_SHOTS", "-1"]


def step_case(args, method, n_classes, path):
    """(run, images) of one training step of ``method`` on ``path``."""
    batch_size = METHODS[method]
    world = image_folder(args.workdir, n_classes, max(1, -(-batch_size // n_classes)))
    opts = ["DATALOADER.TRAIN_X.BATCH_SIZE", str(batch_size)]
    if path.startswith("chunked"):
        opts += ["TRAIN.TEXT_ENCODER.CHUNK_CLASSES", str(args.chunk),
                 "TRAIN.TEXT_ENCODER.CHECKPOINT", "True"]
    trainer = build_trainer(method, VIT_B16, args.workdir, world, opts, args.device, args.prec)
    if path == "upstream":
        trainer.model.text_encoder = FullContextTextEncoder(trainer.model.text_encoder)
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 10**9
    batch = next(iter(trainer.train_loader_x))
    batch = {"img": batch["img"].to(args.device), "label": batch["label"].to(args.device)}

    def run():
        trainer.forward_backward(batch)
    return run, len(batch["label"])


def measure(args, method, n_classes, paths):
    """{path: result} of the ``paths`` measured together (interleaved repetitions)."""
    cases = {path: step_case(args, method, n_classes, path) for path in paths}
    results = interleaved(cases, args.reps, args.device)
    return {path: {"peak_mem_mb": r["peak_mem_mb"], "ms_per_image": r["ms_per_image"],
                   "estimated": False} for path, r in results.items()}


def extrapolate(small, n_classes):
    """Linear in the class count through the measurements at SMALL."""
    (c1, r1), (c2, r2) = sorted(small.items())
    def line(key):
        return r2[key] + (r2[key] - r1[key]) / (c2 - c1) * (n_classes - c2)
    # Times are not extrapolated: a step's time is not linear in the classes where the
    # image encoder dominates, and two noisy timings give no slope.
    return {"peak_mem_mb": round(line("peak_mem_mb"), 1), "ms_per_image": None, "estimated": True}


def run_method(args, method, budget, distributed):
    """Every case at every ``--classes``: measured where it fits ``budget`` (with
    ``--quick``: where it was measured for the extrapolation), extrapolated elsewhere."""
    results = {}
    if distributed:  # per-rank peaks of the class-sharded, chunked step
        from trainers.distributed import all_gather_object, world_size

        for n_classes in args.classes:
            measured = measure(args, method, n_classes, ["chunked"])["chunked"]
            peaks = all_gather_object(measured["peak_mem_mb"])
            results[f"{method}/{n_classes}/chunked/rank-of-{world_size()}"] = {
                **measured, "peak_mem_mb": max(peaks)}
        return results
    # Unchunked peaks are linear in the class count; a chunked one is affine once there
    # are at least two chunks (one chunk's activations, plus every class's prompts).
    small = SMALL[method]
    points = {"upstream": small, "truncated": small, "chunked": (args.chunk, 2 * args.chunk)}
    measured = {path: {} for path in points}
    for n_classes in sorted(set(sum(points.values(), ()))):
        paths = [path for path in points if n_classes in points[path]]
        for path, result in measure(args, method, n_classes, paths).items():
            measured[path][n_classes] = result
    for n_classes in args.classes:
        runnable = []
        for path in points:
            if n_classes in measured[path]:
                results[f"{method}/{n_classes}/{path}"] = measured[path][n_classes]
            elif ((not args.quick or n_classes == min(args.classes))
                  and extrapolate(measured[path], n_classes)["peak_mem_mb"] <= budget):
                runnable.append(path)
            else:
                results[f"{method}/{n_classes}/{path}"] = extrapolate(measured[path], n_classes)
        if runnable:
            for path, result in measure(args, method, n_classes, runnable).items():
                results[f"{method}/{n_classes}/{path}"] = result
    return results


def check(results, methods, n_classes=1000):
    """The acceptance lines of the memory issue, as pass/fail."""
    def r(method, path, key="peak_mem_mb"):
        return results.get(f"{method}/{n_classes}/{path}", {}).get(key)

    lines = []
    if "CoOp" in methods and r("CoOp", "chunked"):
        lines += [("CoOp chunked <= 1/4 truncated", r("CoOp", "chunked") / r("CoOp", "truncated"),
                   0.25),
                  ("CoOp chunked <= 1/10 upstream", r("CoOp", "chunked") / r("CoOp", "upstream"),
                   0.1)]
    if "CoCoOp" in methods and r("CoCoOp", "chunked"):
        lines.append(("CoCoOp chunked <= 1/8 upstream",
                      r("CoCoOp", "chunked") / r("CoCoOp", "upstream"), 0.125))
    for method in methods:
        for classes in sorted({int(k.split("/")[1]) for k in results if k.startswith(method)}):
            key = f"{method}/{classes}/"
            if (key + "chunked" in results and key + "truncated" in results
                    and not results[key + "truncated"]["estimated"]
                    and not results[key + "chunked"]["estimated"]):
                lines.append((f"{method} {classes} classes: time chunked <= 1.5 x truncated",
                              results[key + "chunked"]["ms_per_image"]
                              / results[key + "truncated"]["ms_per_image"], 1.5))
    for name, value, bound in lines:
        print(f"  {'PASS' if value <= bound else 'FAIL'}  {name}: {value:.3f}")


def main(argv=None):
    args = parse_args(argv)
    from trainers.distributed import init_distributed, is_main_process

    distributed = init_distributed(args.device == "cuda") > 1
    torch.manual_seed(0)
    budget = args.max_mb or free_mb(args.device) / 2
    print(f"Machine: {machine()}; cases over {budget:.0f} MiB are extrapolated")
    results = {}
    for method in args.methods:
        results.update(run_method(args, method, budget, distributed))
    if not is_main_process():
        return
    rows = [[case, r["peak_mem_mb"], r["ms_per_image"], "estimated" if r["estimated"] else ""]
            for case, r in results.items()]
    print_table(rows, ["case", "peak MiB", "ms/image", ""],
                f"{VIT_B16} shape, {args.device} {args.prec}, chunks of {args.chunk} classes, "
                f"{args.reps} timed repetition(s)")
    check(results, args.methods)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
