"""Prepare benchmark datasets under $DATA exactly as the loaders expect, or check them.

    python -m datasets.prepare NAME [NAME ...] --root $DATA    # download, verify, lay out
    python -m datasets.prepare all --root $DATA                # every dataset
    python -m datasets.prepare StanfordCars --root $DATA --from ~/Downloads/stanford-cars
    python -m datasets.prepare --check --root $DATA [NAME ...] # what is there, what is missing
    python -m datasets.prepare --sources                       # the source table

Files come from datasets/sources.py (or ``--mirror`` / ``DATASETS_MIRROR``);
downloads go to ``$DATA/.downloads/`` and are deleted once extracted (unless
``--keep-downloads``). Archives extract into a temporary folder inside the
dataset folder (datasets/archives.py refuses members that would land outside
it) and their entries are then moved into place. Nothing is written outside
--root; an existing file or folder is replaced only with ``--force``.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tarfile
import tempfile
import time

from tabulate import tabulate

from datasets.errors import DownloadError

from . import check as checks
from .archives import extract, move_into
from .download import content_problem, fetch, verify
from .sources import SOURCES

MIRROR_ENV = "DATASETS_MIRROR"
CACHES = ("split_fewshot", "preprocessed.pkl")  # written by the loaders, never taken from an archive


class PrepareError(RuntimeError):
    """A dataset that cannot be prepared as asked; the message says what to do."""


def listing(folder, limit=10):
    entries = sorted(os.listdir(folder)) if osp.isdir(folder) else []
    return ", ".join(entries[:limit]) + (" ..." if len(entries) > limit else "") or "nothing"


def place(source, path, dataset_dir, force, keep_original):
    """Put a fetched file (or an archive's entries) where the loader expects it."""
    if not source.is_archive:
        target = osp.join(dataset_dir, source.provides)
        if keep_original:  # the user's own file (--from): small files are copied
            if osp.lexists(target) and not force:
                raise FileExistsError(f"{target} already exists; pass --force to replace it")
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
        else:
            move_into(path, target, force)
        return
    os.makedirs(dataset_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".extract-{source.filename}-", dir=dataset_dir)
    try:
        extract(path, staging)
        inner = osp.join(staging, source.take)
        if not osp.isdir(inner):
            raise PrepareError(f"{source.filename}: expected the folder '{source.take}' inside the "
                               f"archive; found {listing(staging)}")
        for entry in sorted(os.listdir(inner)):
            if entry in CACHES or entry.endswith(".pkl"):
                print(f"{source.filename}: not installing {entry} from the archive: caches are "
                      "built by the first run on this machine (datasets/cache_files.py)")
                continue
            move_into(osp.join(inner, entry), osp.join(dataset_dir, source.into, entry), force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------- ImageNet steps
def unpack_class_tars(train_dir):
    """ILSVRC2012_img_train.tar holds one tar per class: <wnid>.tar -> <wnid>/."""
    for name in sorted(os.listdir(train_dir)):
        path = osp.join(train_dir, name)
        if name.endswith(".tar") and tarfile.is_tarfile(path):
            extract(path, osp.join(train_dir, name[:-4]), progress=False)
            os.unlink(path)


def sort_imagenet_val(dataset_dir):
    """Move the flat ILSVRC2012_val_XXXXXXXX.JPEG files into <wnid>/ folders using the
    devkit's ground truth (data/ILSVRC2012_validation_ground_truth.txt, data/meta.mat)."""
    from scipy.io import loadmat

    val = osp.join(dataset_dir, "images", "val")
    flat = sorted(f for f in os.listdir(val) if osp.isfile(osp.join(val, f)))
    if not flat:
        return
    data = osp.join(dataset_dir, "devkit", "data")
    truth = osp.join(data, "ILSVRC2012_validation_ground_truth.txt")
    if not osp.exists(truth):
        raise PrepareError(f"{val} is flat and {truth} is missing: put ILSVRC2012_devkit_t12.tar.gz "
                           "in the --from folder to sort it")
    synsets = loadmat(osp.join(data, "meta.mat"), squeeze_me=True)["synsets"]
    wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    with open(truth) as f:
        labels = [int(line) for line in f if line.strip()]
    for name in flat:
        index = int(osp.splitext(name)[0].rsplit("_", 1)[-1])  # 1-based image number
        folder = osp.join(val, wnid[labels[index - 1]])
        os.makedirs(folder, exist_ok=True)
        os.replace(osp.join(val, name), osp.join(folder, name))


# --------------------------------------------------- alternative layouts (--from)
def _first_dir(*candidates):
    return next((c for c in candidates if osp.isdir(c)), None)


def _bring(src, dest, force, link):
    if link:
        if osp.lexists(dest) and not force:
            raise FileExistsError(f"{dest} already exists; pass --force to replace it")
        if osp.lexists(dest):
            move_into(src, dest, force)  # removes the old one first
            return
        os.makedirs(osp.dirname(dest), exist_ok=True)
        os.symlink(osp.abspath(src), dest)
    else:
        move_into(src, dest, force)


def convert_stanford_cars(src, dataset_dir, force, link):
    """Re-uploads nest the image folders (cars_train/cars_train/) and the devkit
    (car_devkit/devkit/)."""
    train = _first_dir(osp.join(src, "cars_train", "cars_train"), osp.join(src, "cars_train"))
    test = _first_dir(osp.join(src, "cars_test", "cars_test"), osp.join(src, "cars_test"))
    if not (train and test):
        return False
    moves = {"cars_train": train, "cars_test": test}
    devkit = _first_dir(osp.join(src, "car_devkit", "devkit"), osp.join(src, "devkit"))
    if devkit:
        moves["devkit"] = devkit
    annos = osp.join(src, "cars_test_annos_withlabels.mat")
    if osp.isfile(annos):
        moves["cars_test_annos_withlabels.mat"] = annos
    for target, path in moves.items():
        _bring(path, osp.join(dataset_dir, target), force, link)
    return True


def convert_sun397(src, dataset_dir, force, link):
    """SUN397/<letter>/<class>/... anywhere one level down; partition lists beside it or in Partitions/."""
    images = _first_dir(osp.join(src, "SUN397"))
    if images is None and osp.isdir(osp.join(src, "a", "abbey")):
        images = src
    if images is None:
        return False
    for folder in (src, osp.join(src, "Partitions")):
        for name in (sorted(os.listdir(folder)) if osp.isdir(folder) else []):
            if name.endswith(".txt") and (name == "ClassName.txt" or name[:-7] in ("Training", "Testing")):
                _bring(osp.join(folder, name), osp.join(dataset_dir, name), force, link)
    _bring(images, osp.join(dataset_dir, "SUN397"), force, link)
    return True


def convert_imagenet_sketch(src, dataset_dir, force, link):
    """Kaggle and Hugging Face copies hold sketch/<wnid>/ (sometimes under ImageNet-Sketch/)."""
    images = _first_dir(osp.join(src, "sketch"), osp.join(src, "ImageNet-Sketch", "sketch"),
                        osp.join(src, "images"))
    if images is None:
        return False
    _bring(images, osp.join(dataset_dir, "images"), force, link)
    return True


CONVERTERS = {"StanfordCars": (convert_stanford_cars, "cars_train/[cars_train/] and cars_test/"
                               "[cars_test/] image folders, optional [car_devkit/]devkit/ and "
                               "cars_test_annos_withlabels.mat"),
              "SUN397": (convert_sun397, "SUN397/<letter>/<class>/ (or the letter folders "
                         "themselves) and the partition .txt files"),
              "ImageNetSketch": (convert_imagenet_sketch, "sketch/<wnid>/ folders")}


# ------------------------------------------------------------------ prepare
def prepare(name, root, mirror="", src="", force=False, keep_downloads=False, link=False,
            progress=True):
    """Bring ``name`` to the complete layout; return (state, check report, downloaded files)."""
    before = checks.check_dataset(name, root)
    if before.state == "complete" and not force:
        print(f"{name}: already complete in {root}; nothing downloaded")
        return "present", before, []
    dataset_dir = checks.locate(name, root).dataset_dir
    downloads = osp.join(root, ".downloads")
    sources = SOURCES[name]
    from_files = {s.filename for s in sources if src and osp.isfile(osp.join(src, s.filename))}
    if src and not from_files:
        convert, expected = CONVERTERS.get(name, (None, "the files " + ", ".join(
            s.filename for s in sources)))
        if convert is None or not convert(src, dataset_dir, force, link):
            raise PrepareError(f"{name}: the layout of {src} is not one this command knows. Expected "
                               f"{expected}; found {listing(src)}. DATASETS.md lists the known layouts")
    fetched, manual = [], []
    try:
        for source in sources:
            target = osp.join(dataset_dir, source.provides)
            if osp.lexists(target) and not force:
                why = "" if source.is_archive or not osp.isfile(target) else content_problem(target, source)
                if not why:
                    continue
                print(f"{name}: {target} is not a valid {source.filename} ({why}); replacing it")
                os.unlink(target)
            if source.filename in from_files:
                path = osp.join(src, source.filename)
                why = verify(path, source)
                if why:
                    raise PrepareError(f"{path} is not the expected {source.filename}: {why}")
                place(source, path, dataset_dir, force, keep_original=True)
                continue
            if source.manual and not mirror:
                manual.append(source)
                continue
            try:
                path, downloaded = fetch(source, downloads, mirror, progress)
            except DownloadError as e:
                if not source.optional:
                    raise
                print(f"{name}: skipped {source.filename}, needed only to rebuild the split ({e})")
                continue
            if downloaded:
                fetched.append(source.filename)
            place(source, path, dataset_dir, force, keep_original=False)
            if osp.exists(path) and not keep_downloads:
                os.unlink(path)
    finally:
        if osp.isdir(downloads) and not os.listdir(downloads):
            os.rmdir(downloads)
    if name == "ImageNet" and osp.isdir(osp.join(dataset_dir, "images", "train")):
        unpack_class_tars(osp.join(dataset_dir, "images", "train"))
    if name == "ImageNet" and osp.isdir(osp.join(dataset_dir, "images", "val")):
        sort_imagenet_val(dataset_dir)
    after = checks.check_dataset(name, root)
    if after.state != "complete" and manual:
        print(manual_instruction(name, root, manual, dataset_dir))
        return "manual step", after, fetched
    return ("prepared" if after.state == "complete" else after.state), after, fetched


def manual_instruction(name, root, sources, dataset_dir):
    lines = [f"{name}: these files cannot be downloaded automatically:"]
    for s in sources:
        lines.append(f"  - {s.filename}: from {s.manual}")
    lines.append(f"Put them in one folder and run: python -m datasets.prepare {name} --root {root} "
                 "--from FOLDER")
    if name == "ImageNet":
        lines.append(f"Already extracted? Put train/ and val/ (flat or per class) in {dataset_dir}/images/; "
                     "a flat val/ is sorted with the devkit archive given in FOLDER.")
    return "\n".join(lines)


def sources_table():
    rows = []
    for name, sources in SOURCES.items():
        for s in sources:
            where = s.url or (f"Google Drive {s.drive_id}" if s.drive_id else f"manual: {s.manual}")
            checksum = f"md5 {s.md5}" if s.md5 else f"sha256 {s.sha256}" if s.sha256 else "none published"
            rows.append([name, s.filename, where, checksum])
    return tabulate(rows, headers=["dataset", "file", "source", "checksum"])


def parse_names(names):
    if not names or names == ["all"]:
        return list(SOURCES)
    known = list(SOURCES) + ["ImageFolder"]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PrepareError(f"unknown dataset(s) {unknown}; known: {', '.join(known)} (or 'all')")
    return names


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m datasets.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="datasets (registry names) or 'all'")
    parser.add_argument("--root", help="the DATA folder (DATASET.ROOT)")
    parser.add_argument("--check", action="store_true", help="report what is present; change nothing")
    parser.add_argument("--dir", default="", help="ImageFolder: DATASET.IMAGEFOLDER.DIR (with --check)")
    parser.add_argument("--from", dest="src", default="",
                        help="a folder holding the archives, or a known alternative copy, to use")
    parser.add_argument("--link", action="store_true", help="with --from: link instead of moving")
    parser.add_argument("--mirror", default=os.environ.get(MIRROR_ENV, ""),
                        help=f"fetch every file from MIRROR/<filename> (also ${MIRROR_ENV})")
    parser.add_argument("--force", action="store_true", help="download again and replace what exists")
    parser.add_argument("--keep-downloads", action="store_true", help="keep archives in $DATA/.downloads")
    parser.add_argument("--sources", action="store_true", help="print the source table and exit")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.sources:
        print(sources_table())
        return 0
    if not args.root:
        build_parser().error("--root is required")
    root = osp.abspath(osp.expanduser(args.root))
    try:
        names = parse_names(args.names)
        if args.check:
            reports = [checks.check_dataset(n, root, args.dir if n == "ImageFolder" else "")
                       for n in (names if args.names else list(SOURCES))]
            for report in reports:
                checks.print_report(report)
            return 0 if all(r.state == "complete" for r in reports) else 1
        if "ImageFolder" in names:
            raise PrepareError("ImageFolder is your own data: nothing to download; check it with --check "
                               "ImageFolder --dir DIR")
        rows, failed = [], False
        for name in names:
            start = time.time()
            try:
                state, report, fetched = prepare(name, root, args.mirror, args.src, args.force,
                                                 args.keep_downloads, args.link)
            except Exception as e:  # one dataset's failure does not stop the others
                print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
                state, report, fetched = "failed", checks.Report(name), []
            failed |= state not in ("present", "prepared")
            counts = report.counts
            rows.append([name, state, len(fetched), counts.get("train", "-"), counts.get("val", "-"),
                         counts.get("test", "-"), f"{time.time() - start:.1f}s"])
        print(tabulate(rows, headers=["dataset", "state", "downloaded", "train", "val", "test", "time"]))
        return 1 if failed else 0
    except PrepareError as e:
        print(f"datasets.prepare: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
