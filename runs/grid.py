"""The experiment grid: which ``train.py`` commands each protocol runs, and where they write.

The one definition read by the protocol scripts (``scripts/protocols.sh`` asks
``python -m runs.grid`` for each job) and by the sweep (``python -m tools.sweep``), so
their commands and output folders cannot drift apart. Adding a method is one line
in ``METHODS`` (and its scripts/<method>/ folder).

Protocols (CoOp's and CoCoOp's), one job per step:
- base2new: train on the base classes (``base2new_train``), test on the new ones
  (``base2new_test``); a zero-shot method evaluates both (``base2new_zeroshot``);
- fewshot: train and test on all classes with K shots (``fewshot``);
- xd: train on ImageNet (``xd_train``), evaluate on other datasets or the ImageNet
  variants (``xd_test``);
- zeroshot: zero-shot CLIP with a method's backbone and input settings (``zeroshot``).

    python -m runs.grid STEP METHOD ARGS... --root DATA [--output OUT] [--opts KEY VALUE ...]

prints the job's state (runs/state.py), its output folder and its train.py
arguments, one per line (the form protocols.sh reads).
"""
import argparse
import itertools
import os.path as osp
import sys
from dataclasses import dataclass, field, replace

from runs.errors import GridError
from runs.state import FINISHED, run_state

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# The 11 benchmarks of the base-to-new and few-shot tables, in the papers' order.
BENCHMARKS = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers",
              "food101", "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]
IMAGENET_VARIANTS = ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
FEWSHOT_SHOTS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Method:
    """How the protocols run one method."""
    trainer: str
    config: str  # configs/trainers/<config_dir>/<config>.yaml, unless a protocol names another
    base2new: dict = field(default_factory=dict)  # dataset -> config
    xd: str = None
    fewshot: dict = field(default_factory=dict)  # shots -> config
    opts: tuple = ()  # KEY VALUE pairs of every run of the method (not of its zero-shot runs)
    config_dir: str = None  # default: the trainer's name
    zero_shot: bool = False  # evaluated, never trained
    pinned_config: str = None  # NAME@CFG: this config in every protocol, whatever CFG says


METHODS = {m.trainer: m for m in [
    Method("ZeroshotCLIP", "vit_b16", config_dir="CoOp", zero_shot=True),
    Method("ZeroshotCLIP2", "vit_b16", config_dir="CoOp", zero_shot=True),  # template ensemble
    # CoOp: base-to-new as in CoCoOp's comparison ("a photo of a", 50 epochs on ImageNet);
    # few-shot as in CoOp's paper (50 epochs for 1 shot, 100 for 2 and 4, 200 for 8 and 16).
    Method("CoOp", "vit_b16_ctxv1", base2new={"imagenet": "vit_b16_ep50_ctxv1"},
           xd="vit_b16_ep50_ctxv1",
           fewshot={1: "vit_b16_ep50", 2: "vit_b16_ep100", 4: "vit_b16_ep100", 8: "vit_b16",
                    16: "vit_b16"}),
    Method("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1"),
    Method("KgCoOp", "vit_b16_ep100_ctxv1", opts=("TRAINER.KGCOOP.W", "8.0")),
    # ProGrad publishes RN50 configs only (upstream's scripts: 4 shots, SHOTS=4 here).
    Method("ProGrad", "rn50_ep100", base2new={"imagenet": "rn50_ep50"}, xd="rn50_ep50",
           fewshot={1: "rn50_ep50", 2: "rn50_ep100", 4: "rn50_ep100", 8: "rn50", 16: "rn50"},
           opts=("LOSS.LAMBDA", "1.0")),
    Method("IVLP", "vit_b16_c2_ep20_batch4_4+4ctx"),  # PromptSRC's IVLP baseline
    Method("MaPLe", "vit_b16_c2_ep5_batch4_2ctx", xd="vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
    Method("PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx",
           xd="vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets",
           fewshot={k: "vit_b16_c2_ep50_batch4_4+4ctx_few_shot" for k in FEWSHOT_SHOTS}),
    Method("E2MIM", "vit_b16_ep50_ctxv1", xd="vit_b16_ep50_ctxv1_imagenet"),
]}


@dataclass(frozen=True)
class Settings:
    """What is the same for every job of a grid (the scripts' environment variables)."""
    root: str  # DATA
    output: str = "output"  # OUTPUT; a relative folder is under the repository
    cfg: str = None  # CFG: this config for every method and protocol
    method_opts: tuple = None  # replaces the method's opts (E2MIM_OPTS, KgCoOp's W)
    opts: tuple = ()  # EXTRA_OPTS: appended to every command, they win over everything
    xd_source: str = "imagenet"  # XD_SOURCE
    zs_trainer: str = None  # ZS_TRAINER of the zeroshot protocol (default ZeroshotCLIP)

    def out(self, *parts):
        return osp.join(REPO, self.output, *parts)


LOAD_EPOCH = "<last epoch of the model>"  # filled in when the job runs


@dataclass(frozen=True)
class Job:
    """One train.py run of the grid."""
    name: str
    run_dir: str
    args: tuple  # train.py's arguments; LOAD_EPOCH stands for the final epoch of ``trained_by``
    evaluation: bool
    trained_by: "Job" = None  # the training run this evaluation loads

    def state(self):
        return run_state(self.run_dir, self.evaluation)

    def argv(self, planned=False):
        """["train.py", ...]. The epoch to load is that of the finished training run;
        ``planned``: for a training run still to come, its config's last epoch."""
        if self.trained_by is None:
            return ["train.py", *self.args]
        model = self.trained_by.state()
        if model.state == FINISHED:
            epoch = model.epoch
        elif planned:
            epoch = planned_epochs(self.trained_by)
        else:
            raise GridError(f"no finished training run in {self.trained_by.run_dir}; run its training "
                            "job first (the matching *_train.sh, or the sweep)")
        return ["train.py", *(str(epoch) if a == LOAD_EPOCH else a for a in self.args)]


def planned_epochs(job):
    """OPTIM.MAX_EPOCH of a training job's config: the epoch its last checkpoint will hold."""
    from runs.command import build_parser, setup_cfg  # the config as train.py builds it

    return setup_cfg(build_parser().parse_args(job.argv()[1:])).OPTIM.MAX_EPOCH


# ---------------------------------------------------------------- lookups
def method(name):
    """The method ``name``; ``NAME@CFG`` is that method with config CFG in every protocol
    (a variant of its own in the results: the tables group runs by config)."""
    name, _, cfg = name.partition("@")
    for key, value in METHODS.items():
        if key.lower() == name.lower():
            if not cfg:
                return value
            path = osp.join(REPO, "configs", "trainers", value.config_dir or value.trainer, f"{cfg}.yaml")
            if not osp.isfile(path):
                raise GridError(f"{name}@{cfg}: no config {osp.relpath(path, REPO)}")
            return replace(value, pinned_config=cfg)
    raise GridError(f"unknown method {name}; the grid knows {', '.join(METHODS)} (runs/grid.py "
                    "METHODS: one line adds one)")


def check_dataset(name):
    if not osp.isfile(osp.join(REPO, "configs", "datasets", f"{name}.yaml")):
        raise GridError(f"unknown dataset {name}: no configs/datasets/{name}.yaml")
    return name


def check_shots(shots):
    if str(shots) not in {str(k) for k in FEWSHOT_SHOTS}:
        raise GridError(f"SHOTS must be 1, 2, 4, 8 or 16; got {shots}")
    return int(shots)


def check_seed(seed):
    if not str(seed).isdigit() or int(seed) < 1:
        raise GridError(f"SEED must be a positive whole number; got {seed}")
    return int(seed)


def config(m, protocol, key, s):
    """The config name of method ``m`` in ``protocol`` (``key``: a dataset or a shot count)."""
    if m.pinned_config or s.cfg:
        return m.pinned_config or s.cfg
    if protocol == "xd":
        return m.xd or m.config
    return getattr(m, protocol).get(key, m.config)


def _job(name, run_dir, m, dataset, seed, cfg, s, extra, opts=None, evaluation=False,
         trainer=None, trained_by=None):
    args = ["--root", s.root, "--output-dir", run_dir, "--seed", str(seed),
            "--trainer", trainer or m.trainer,
            "--dataset-config-file", f"configs/datasets/{dataset}.yaml",
            "--config-file", f"configs/trainers/{m.config_dir or m.trainer}/{cfg}.yaml", *extra]
    method_opts = m.opts if s.method_opts is None else s.method_opts
    args += [*(method_opts if opts is None else opts), *s.opts]
    return Job(name, run_dir, tuple(args), evaluation, trained_by)


# ---------------------------------------------------------------- the steps
def base2new_train(m, dataset, seed, shots, s):
    cfg = config(m, "base2new", dataset, s)
    run_dir = s.out("base2new", "train_base", dataset, f"shots_{shots}", m.trainer, cfg, f"seed{seed}")
    return _job(f"base2new/{m.trainer}/{dataset}/shots{shots}/seed{seed}/train", run_dir, m, dataset,
                seed, cfg, s, ["DATASET.NUM_SHOTS", str(shots), "DATASET.SUBSAMPLE_CLASSES", "base"])


def base2new_test(m, dataset, seed, shots, s):
    train = base2new_train(m, dataset, seed, shots, s)
    cfg = config(m, "base2new", dataset, s)
    run_dir = s.out("base2new", "test_new", dataset, f"shots_{shots}", m.trainer, cfg, f"seed{seed}")
    return _job(f"base2new/{m.trainer}/{dataset}/shots{shots}/seed{seed}/test", run_dir, m, dataset,
                seed, cfg, s, ["--model-dir", train.run_dir, "--load-epoch", LOAD_EPOCH, "--eval-only",
                               "DATASET.NUM_SHOTS", str(shots), "DATASET.SUBSAMPLE_CLASSES", "new"],
                evaluation=True, trained_by=train)


def base2new_zeroshot(m, dataset, seed, shots, sub, s):
    """Zero-shot CLIP on the base or the new classes, in the base-to-new layout (for the table)."""
    cfg = config(m, "base2new", dataset, s)
    split = {"base": "train_base", "new": "test_new"}[sub]
    run_dir = s.out("base2new", split, dataset, f"shots_{shots}", m.trainer, cfg, f"seed{seed}")
    return _job(f"base2new/{m.trainer}/{dataset}/shots{shots}/seed{seed}/{sub}", run_dir, m, dataset,
                seed, cfg, s, ["--eval-only", "DATASET.NUM_SHOTS", str(shots),
                               "DATASET.SUBSAMPLE_CLASSES", sub], evaluation=True)


def fewshot(m, dataset, seed, shots, s):
    shots = check_shots(shots)
    cfg = config(m, "fewshot", shots, s)
    run_dir = s.out(dataset, m.trainer, f"{cfg}_{shots}shots", f"seed{seed}")
    return _job(f"fewshot/{m.trainer}/{dataset}/shots{shots}/seed{seed}", run_dir, m, dataset, seed,
                cfg, s, ["DATASET.NUM_SHOTS", str(shots)])


def xd_train(m, seed, shots, s):
    cfg = config(m, "xd", None, s)
    run_dir = s.out(s.xd_source, m.trainer, f"{cfg}_{shots}shots", f"seed{seed}")
    return _job(f"xd/{m.trainer}/{s.xd_source}/shots{shots}/seed{seed}/train", run_dir, m,
                s.xd_source, seed, cfg, s, ["DATASET.NUM_SHOTS", str(shots)])


def xd_test(m, dataset, seed, shots, s):
    train = xd_train(m, seed, shots, s)
    cfg = config(m, "xd", None, s)
    run_dir = s.out("evaluation", m.trainer, f"{cfg}_{shots}shots", dataset, f"seed{seed}")
    return _job(f"xd/{m.trainer}/{dataset}/shots{shots}/seed{seed}/test", run_dir, m, dataset, seed,
                cfg, s, ["--model-dir", train.run_dir, "--load-epoch", LOAD_EPOCH, "--eval-only"],
                evaluation=True, trained_by=train)


def zeroshot(m, dataset, sub, s):
    """Zero-shot CLIP (``s.zs_trainer``; by default the method itself if it is zero-shot,
    else ZeroshotCLIP) with the backbone and input settings of the method's base-to-new config."""
    cfg = config(m, "base2new", dataset, s)
    trainer = s.zs_trainer or (m.trainer if m.zero_shot else "ZeroshotCLIP")
    run_dir = s.out(trainer, cfg, dataset, sub)
    return _job(f"zeroshot/{m.trainer}/{dataset}/{sub}", run_dir, m, dataset, 1, cfg, s,
                ["--eval-only", "DATASET.SUBSAMPLE_CLASSES", sub], opts=(), evaluation=True,
                trainer=trainer)


# ---------------------------------------------------------------- grids
PROTOCOLS = ("base2new", "fewshot", "xd", "zeroshot")


def default_datasets(protocol, s):
    if protocol == "xd":
        return [d for d in BENCHMARKS if d != s.xd_source] + IMAGENET_VARIANTS
    return list(BENCHMARKS)


def tasks(protocol, methods, datasets=None, seeds=(1, 2, 3), shots=None, settings=None):
    """The grid as tasks: each a tuple of jobs run in order (a test after its training)."""
    if protocol not in PROTOCOLS:
        raise GridError(f"unknown protocol {protocol}; one of {', '.join(PROTOCOLS)}")
    s = settings
    methods = [method(name) for name in methods]
    datasets = [check_dataset(d) for d in (datasets or default_datasets(protocol, s))]
    seeds = [check_seed(seed) for seed in seeds]
    shots = [int(k) for k in (shots or (FEWSHOT_SHOTS if protocol == "fewshot" else (16,)))]
    if protocol == "xd":
        return [(xd_train(m, seed, k, s), *(xd_test(m, d, seed, k, s) for d in datasets))
                for m in methods for k in shots for seed in seeds]
    if protocol == "zeroshot":
        return [(zeroshot(m, d, "all", s),) for m in methods for d in datasets]
    grid = []
    for m, d, k, seed in itertools.product(methods, datasets, shots, seeds):
        if protocol == "fewshot":
            grid.append((fewshot(m, d, seed, k, s),))
        elif m.zero_shot:
            grid.append(tuple(base2new_zeroshot(m, d, seed, k, sub, s) for sub in ("base", "new")))
        else:
            grid.append((base2new_train(m, d, seed, k, s), base2new_test(m, d, seed, k, s)))
    return grid


# ---------------------------------------------------------------- one job, for protocols.sh
STEPS = {  # step: (function, its positional arguments)
    "base2new_train": (base2new_train, ("DATASET", "SEED")),
    "base2new_test": (base2new_test, ("DATASET", "SEED")),
    "base2new_zeroshot": (base2new_zeroshot, ("DATASET", "SEED", "SUB")),
    "fewshot": (fewshot, ("DATASET", "SEED", "SHOTS")),
    "xd_train": (xd_train, ("SEED",)),
    "xd_test": (xd_test, ("DATASET", "SEED")),
    "zeroshot": (zeroshot, ("DATASET", "SUB")),
}


def step_job(step, method_name, values, shots, settings):
    function, names = STEPS[step]
    if len(values) != len(names):
        raise GridError(f"{step} expects {' '.join(names)}; got: {' '.join(values)}")
    kwargs = dict(zip([n.lower() for n in names], values))
    if "dataset" in kwargs:
        check_dataset(kwargs["dataset"])
    if "seed" in kwargs:
        kwargs["seed"] = check_seed(kwargs["seed"])
    if "sub" in kwargs and kwargs["sub"] not in ("all", "base", "new"):
        raise GridError(f"SUB must be all, base or new; got {kwargs['sub']}")
    if function in (base2new_train, base2new_test, base2new_zeroshot, xd_train, xd_test):
        kwargs["shots"] = shots
    return function(method(method_name), s=settings, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description="One job of the grid, for scripts/protocols.sh")
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("method")
    parser.add_argument("values", nargs="*", help="the step's DATASET, SEED, SHOTS or SUB")
    parser.add_argument("--root", required=True)
    parser.add_argument("--output", default="output")
    parser.add_argument("--cfg")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--xd-source", default="imagenet")
    parser.add_argument("--zs-trainer")
    parser.add_argument("--method-opts", nargs="*")
    parser.add_argument("--opts", nargs="*", default=[])
    args = parser.parse_args(argv)
    settings = Settings(args.root, args.output, args.cfg, args.method_opts and tuple(args.method_opts),
                        tuple(args.opts), args.xd_source, args.zs_trainer)
    try:
        job = step_job(args.step, args.method, args.values, args.shots, settings)
        state = job.state()
        lines = [state.state, job.run_dir] + ([] if state.state == FINISHED else job.argv())
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
