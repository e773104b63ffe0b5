"""What the benchmarks share: data, backbones, trainers built as train.py builds them,
timing by interleaved repetitions, peak memory, tables and JSON.

Every benchmark runs the repository's own code on the same data (a small
SynthWorld generated under the work folder) and reports ratios measured in one
run; absolute times depend on the machine.
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import statistics
import sys
import time

import torch
from tabulate import tabulate

from dassl.utils import atomic_write, torch_save_atomic

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Each method's published ViT-B/16 configuration with the context "a photo of a"
# (4 tokens), so that the methods differ by their algorithm, not their prompt length.
METHOD_CONFIGS = {
    "ZeroshotCLIP": "configs/trainers/CoOp/vit_b16.yaml",
    "CoOp": "configs/trainers/CoOp/vit_b16_ctxv1.yaml",
    "CoCoOp": "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
    "KgCoOp": "configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml",
    "E2MIM": "configs/trainers/E2MIM/vit_b16_ep50_ctxv1.yaml",
    "IVLP": "configs/trainers/IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    "MaPLe": "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
    "PromptSRC": "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    "ProGrad": "configs/trainers/ProGrad/rn50_ep100.yaml",  # its published file (backbone set here)
}

TINY_BACKBONE = "SynthCLIP-RN"  # shipped with the repository (clip/weights/)
VIT_B16 = "ViT-B/16"  # built from the release's dimensions with random weights


def default_workdir():
    return osp.join(REPO, "output", "benchmarks")


def benchmark_parser(doc, quick_help):
    """The options every benchmark takes; ``parse`` fills in the repetitions."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", default="", help="write the results to this file")
    parser.add_argument("--reps", type=int, default=0, help="repetitions (default 5, quick 3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", default=default_workdir(),
                        help="data and random-weight checkpoints are kept here")
    return parser


def parse(parser, argv=None):
    args = parser.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 5)
    return args


def backbone_checkpoint(backbone, workdir):
    """``MODEL.BACKBONE.NAME`` for ``backbone``: the shipped tiny model by name, a
    release shape as a random-weight checkpoint file (written once, atomically)."""
    if backbone == TINY_BACKBONE:
        return backbone
    from clip.shapes import random_state_dict

    path = osp.join(workdir, "checkpoints", backbone.replace("/", "-") + "-random.pt")
    if not osp.exists(path):
        print(f"Writing a {backbone}-shaped CLIP with random weights to {path}")
        torch_save_atomic(random_state_dict(backbone, seed=0), path)
    return path


def input_size(backbone):
    from clip.shapes import MODEL_SHAPES

    return 32 if backbone == TINY_BACKBONE else MODEL_SHAPES[backbone][1]


def full_context_text_features(text_encoder, prompts, tokenized_prompts, layer_prompts=()):
    """Upstream's TextEncoder: every prompt over all 77 context positions; with
    ``layer_prompts``, the deep text prompts of IVLP, MaPLe and PromptSRC, which upstream's
    modified CLIP inserts over all 77 positions too."""
    from trainers.clip_prompting import replace_text_context, run_blocks

    encoder = text_encoder
    x = (prompts + encoder.positional_embedding.type(encoder.dtype)).permute(1, 0, 2)
    if any(prompt is not None for prompt in layer_prompts):
        x = run_blocks(encoder.transformer, x, layer_prompts, replace_text_context)
    else:
        x = encoder.transformer(x)
    x = x.permute(1, 0, 2)
    x = encoder.ln_final(x).type(encoder.dtype)
    return x[torch.arange(x.shape[0]), tokenized_prompts.argmax(dim=-1)] @ encoder.text_projection


def world_root(workdir, n_classes, train_per_class, test_per_class=1):
    """DATA root of a small SynthWorld with ``n_classes`` classes (10 colours x n/10
    shapes); generated on first use by the dataset itself."""
    if n_classes % 10 or not 10 <= n_classes <= 120:
        raise SystemExit(f"--classes must be a multiple of 10 between 10 and 120; got {n_classes}")
    folder = f"world{n_classes}x{train_per_class}x{test_per_class}"
    return osp.join(workdir, "data", folder), [
        "DATASET.SYNTHWORLD.N_COLOURS", "10",
        "DATASET.SYNTHWORLD.N_SHAPES", str(n_classes // 10),
        "DATASET.SYNTHWORLD.TRAIN_PER_CLASS", str(train_per_class),
        "DATASET.SYNTHWORLD.VAL_PER_CLASS", "1",
        "DATASET.SYNTHWORLD.TEST_PER_CLASS", str(test_per_class),
        "DATASET.NUM_SHOTS", "-1",
    ]


def build_trainer(method, backbone, workdir, world, opts=(), device="cpu", prec="fp32",
                  quiet=True):
    """A trainer built exactly as ``train.py`` builds it (config files, flags, overrides)."""
    import train
    from dassl.engine import build_trainer as build
    from dassl.utils import set_random_seed

    root, world_opts = world
    size = input_size(backbone)
    node = {"ZeroshotCLIP": "COOP", "ProGrad": "COOP"}.get(method, method.upper())
    args = train.build_parser().parse_args([
        "--root", root, "--seed", "1", "--trainer", method,
        "--dataset-config-file", osp.join(REPO, "configs/datasets/synthworld.yaml"),
        "--config-file", osp.join(REPO, METHOD_CONFIGS[method]),
        "--output-dir", osp.join(workdir, "runs", method),
        "MODEL.BACKBONE.NAME", backbone_checkpoint(backbone, workdir),
        "INPUT.SIZE", f"({size},{size})", "DATALOADER.NUM_WORKERS", "0",
        "USE_CUDA", str(device == "cuda"), f"TRAINER.{node}.PREC", prec,
        *world_opts, *opts])
    cfg = train.setup_cfg(args)
    set_random_seed(cfg.SEED)
    with quiet_stdout(quiet):
        return build(cfg)


@contextlib.contextmanager
def quiet_stdout(quiet=True):
    if not quiet:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(run, device):
    """Peak tensor memory that ``run()`` allocates beyond what was live before, in MiB:
    on CUDA the allocator's peak; on the CPU the running sum of the allocations and
    frees that torch's profiler records, in order (the process's resident size says
    little: the C allocator reuses freed memory without returning it)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


@contextlib.contextmanager
def quiet_stderr():
    """Silence the profiler's start/stop lines (written by C++ to file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def weights_mb(module):
    """MiB of distinct tensor storage in ``module``'s parameters and buffers (a second
    copy of CLIP would count twice, shared tensors once)."""
    seen, total = set(), 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total / 2**20


def interleaved(cases, reps, device):
    """Run every case once per repetition, in turn (so that drifts of the machine
    hit all cases alike); ``cases``: {name: (run, items)} where ``run()`` does the
    work once and ``items`` is how many images it handles. Returns
    {name: {"ms_per_image": median, "min", "max", "peak_mem_mb"}}."""
    # The memory pass is also the warm-up (first calls allocate and pick kernels).
    peaks = {name: peak_memory_mb(run, device) for name, (run, _) in cases.items()}
    times = {name: [] for name in cases}
    for _ in range(reps):
        for name, (run, items) in cases.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(1000 * (time.perf_counter() - start) / items)
    return {name: {"ms_per_image": statistics.median(values), "min": min(values),
                   "max": max(values), "peak_mem_mb": round(peaks[name], 1)}
            for name, values in times.items()}


def write_json(path, results):
    if not path:
        return
    with atomic_write(path) as f:
        json.dump(results, f, indent=2)
    print(f"Wrote {path}")


def print_table(rows, headers, title=""):
    if title:
        print(f"\n{title}")
    print(tabulate(rows, headers=headers, floatfmt=".3g"))


def machine():
    cpu = f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"torch {torch.__version__}; {cpu}; {gpu}"
