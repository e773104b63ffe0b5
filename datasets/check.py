"""What is present of a dataset under DATASET.ROOT, read through its real loader.

``check_dataset`` never downloads or moves anything; it names the first missing
files, a split file that lists absent images, and the next command to run.
The only files it may write are those the loader itself writes on a first run
(``split_fewshot/``, ImageNet's ``preprocessed.pkl``, ImageFolder's split).
"""
import contextlib
import glob
import io
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field

import yaml

from dassl.config import get_cfg_default
from dassl.data.datasets import DATASET_REGISTRY
from dassl.utils import read_json

from .config import extend_dataset_cfg

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHOW = 5  # missing files named in a report


@dataclass
class Report:
    name: str
    state: str = "complete"  # complete / incomplete / missing
    problems: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # split -> items read by the loader
    fewshot: list = field(default_factory=list)
    next_command: str = ""

    def problem(self, text, state="incomplete"):
        self.problems.append(text)
        if self.state == "complete":
            self.state = state


def dataset_cfg(name, root, folder=""):
    cfg = get_cfg_default()
    extend_dataset_cfg(cfg)
    cfg.DATASET.NAME, cfg.DATASET.ROOT = name, osp.abspath(osp.expanduser(root))
    cfg.DATASET.IMAGEFOLDER.DIR = folder
    return cfg


def locate(name, root, folder=""):
    """The loader object with its paths set, built without reading anything."""
    cls = DATASET_REGISTRY.get(name)
    loader = cls.__new__(cls)
    loader.set_paths(osp.abspath(osp.expanduser(root)), dataset_cfg(name, root, folder))
    return loader


def config_file(name):
    """configs/datasets/<file>.yaml whose DATASET.NAME is ``name``."""
    for path in sorted(glob.glob(osp.join(REPO, "configs", "datasets", "*.yaml"))):
        with open(path) as f:
            if (yaml.safe_load(f) or {}).get("DATASET", {}).get("NAME") == name:
                return osp.relpath(path, REPO)
    return "configs/datasets/<file>.yaml"


def name_missing(report, what, paths):
    if paths:
        shown = ", ".join(paths[:SHOW])
        more = f" and {len(paths) - SHOW} more" if len(paths) > SHOW else ""
        report.problem(f"{what} ({len(paths)}): {shown}{more}")


def check_split_file(report, loader):
    """Every image the split file lists must exist and be non-empty."""
    try:
        split = read_json(loader.split_path)
        entries = [entry[0] for part in ("train", "val", "test") for entry in split[part]]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        report.problem(f"split file {loader.split_path} is unreadable ({type(e).__name__}: {e})")
        return
    prefix = loader.split_prefix()
    absent = [p for p in entries if not osp.isfile(osp.join(prefix, p))]
    empty = [p for p in entries if p not in set(absent) and osp.getsize(osp.join(prefix, p)) == 0]
    name_missing(report, f"split file {osp.basename(loader.split_path)} does not match the images: "
                 f"missing under {prefix}", absent)
    name_missing(report, "empty (unreadable) images", empty)


def check_imagenet_val(report, loader):
    val = osp.join(loader.dataset_dir, "images", "val")
    flat = [f for f in os.listdir(val) if osp.isfile(osp.join(val, f))]
    if flat:
        report.problem(f"{val} is flat ({len(flat)} files, e.g. {sorted(flat)[0]}): the loader needs "
                       "one folder per class; prepare sorts it with the devkit's ground truth")


def read_with_loader(report, name, root, folder):
    cfg = dataset_cfg(name, root, folder)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = DATASET_REGISTRY.get(name)(cfg)
    except Exception as e:  # the loader's own message names the file
        report.problem(f"the loader fails: {type(e).__name__}: {e}")
        return
    report.counts = {"train": len(dataset.train_x), "val": len(dataset.val or []),
                     "test": len(dataset.test)}


def check_dataset(name, root, folder=""):
    report = Report(name)
    loader = locate(name, root, folder)
    root_flag = f"--root {root}" + (f" --dir {folder}" if folder else "")
    prepare = f"python -m datasets.prepare {name} {root_flag}"
    if not osp.isdir(loader.dataset_dir):
        report.problem(f"folder {loader.dataset_dir} does not exist", "missing")
    else:
        has_split = osp.exists(getattr(loader, "split_path", ""))
        if loader.published_split:
            needed = loader.split_form_files() + [osp.basename(loader.split_path)]
        elif has_split:  # ImageFolder after its first run
            needed = loader.split_form_files()
        else:
            needed = loader.creation_files()
        name_missing(report, f"missing in {loader.dataset_dir}",
                     [p for p in needed if not osp.exists(osp.join(loader.dataset_dir, p))])
        if has_split:
            check_split_file(report, loader)
        if name == "ImageNet" and osp.isdir(osp.join(loader.dataset_dir, "images", "val")):
            check_imagenet_val(report, loader)
        if report.state == "complete":
            read_with_loader(report, name, root, folder)
        fewshot_dir = getattr(loader, "split_fewshot_dir", "")
        if fewshot_dir and osp.isdir(fewshot_dir):
            report.fewshot = sorted(os.listdir(fewshot_dir))
    if report.state == "complete":
        extra = f" DATASET.IMAGEFOLDER.DIR {folder}" if folder else ""
        report.next_command = (f"python train.py --root {root} --dataset-config-file "
                               f"{config_file(name)} ...{extra}")
    elif name == "ImageFolder":
        report.next_command = f"put your class folders in {loader.dataset_dir} (README, 'Your own dataset')"
    else:
        report.next_command = prepare
    return report


def print_report(report):
    print(f"{report.name}: {report.state}")
    for problem in report.problems:
        print(f"  - {problem}")
    if report.counts:
        print("  items: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))
    if report.fewshot:
        print(f"  few-shot caches: {', '.join(report.fewshot)}")
    print(f"  next: {report.next_command}")
