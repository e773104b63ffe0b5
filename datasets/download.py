"""Resumable downloads, verified before they get their name.

A transfer goes to ``<file>.part`` beside its target; a cut connection is
resumed with an HTTP Range request (in the same run, and by a later run). The
file is renamed to its name only once verified: against the size and hashes of
datasets/sources.py where they are known, and in any case by reading it as what
it claims to be (an archive through to its end, a split file as JSON holding
train/val/test lists), so that a response cut short without a Content-Length or
a web page served in the file's place is never installed. A file that fails is
deleted and named in the error.
"""
import hashlib
import json
import os
import os.path as osp
import tarfile
import urllib.error
import urllib.request
import zipfile

from tqdm import tqdm

from datasets.errors import DownloadError

CHUNK = 1 << 16
ATTEMPTS = 3


def file_hash(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mismatch(path, source):
    """Why ``path`` is not ``source``'s file ("" when its known size and hashes match)."""
    size = osp.getsize(path)
    if source.size is not None and size != source.size:
        return f"size {size} bytes, expected {source.size}"
    for algorithm, expected in (("sha256", source.sha256), ("md5", source.md5)):
        if expected is not None:
            actual = file_hash(path, algorithm)
            if actual != expected:
                return f"{algorithm.upper()} {actual}, expected {expected}"
    return ""


def content_problem(path, source):
    """Why ``path`` does not read as a whole ``source.filename`` ("" when it does): an archive
    is read through to its end, a JSON file parsed (a split file must hold train, val and
    test lists), a text file must be text."""
    name = source.filename
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "it is an HTML page (a web page served in place of the file: a quota, login or error page)"
    try:
        if name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if name.startswith("split_zhou_") and not (isinstance(data, dict) and all(
                    isinstance(data.get(part), list) and data[part] for part in ("train", "val", "test"))):
                return "it is JSON without non-empty 'train', 'val' and 'test' lists"
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                damaged = zf.testzip()
            if damaged:
                return f"its member {damaged} is damaged"
        elif source.is_archive:
            with tarfile.open(path) as tar:
                for member in tar:
                    if member.isfile():
                        with tar.extractfile(member) as data:
                            while data.read(1 << 20):
                                pass
        elif name.endswith(".txt"):
            with open(path, encoding="utf-8") as f:
                if not f.read().strip():
                    return "it is empty"
        elif name.endswith(".mat") and not head.startswith(b"matlab"):
            return "it is not a MATLAB file"
    except (OSError, EOFError, ValueError, tarfile.TarError, zipfile.BadZipFile) as e:
        return f"it does not read as {name} ({type(e).__name__}: {e}; a cut download?)"
    return ""


def verify(path, source):
    """Why ``path`` is not ``source``'s file ("" when it is): its known size and hashes, and,
    where no hash is known or the file is a small JSON file, its contents."""
    why = mismatch(path, source)
    if not why and (source.sha256 is None and source.md5 is None or source.filename.endswith(".json")):
        why = content_problem(path, source)
    return why


def _http_attempt(url, part, desc, progress):
    """One request, appending to ``part`` from its current size; True when complete."""
    have = osp.getsize(part) if osp.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part is whole
            return True
        raise DownloadError(f"Could not download {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"Could not download {url} ({e})") from e
    with response:
        if have and response.status != 206:  # the server ignored the Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                ncols=80, disable=not progress) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, ValueError):  # connection reset / incomplete read: resume
                return False
        return total is None or osp.getsize(part) >= total


def http_download(url, part, desc, progress=True):
    for _ in range(ATTEMPTS):
        if _http_attempt(url, part, desc, progress):
            return
        print(f"{desc}: connection cut at {osp.getsize(part)} bytes, resuming")
    raise DownloadError(
        f"Download of {url} was cut {ATTEMPTS} times; {part} keeps what arrived and the same "
        "command resumes from there")


def drive_download(drive_id, part, desc, progress=True):
    import gdown

    print(f"{desc}: Google Drive file {drive_id}")
    try:
        result = gdown.download(id=drive_id, output=part, quiet=not progress, resume=True)
    except Exception as e:  # gdown raises its own types for quota, permission, network
        result, error = None, e
    else:
        error = None
    if result is None:
        raise DownloadError(
            f"Could not download {desc} from Google Drive (file id {drive_id}; {error}). Some networks "
            f"cannot reach Drive: download https://drive.google.com/file/d/{drive_id} in a browser and "
            "pass the folder holding it with --from, or use --mirror")


def fetch(source, folder, mirror="", progress=True):
    """``folder/<filename>`` downloaded (from the mirror, the URL or Drive) and verified.
    Returns (path, downloaded) where ``downloaded`` is False if the file was already there."""
    target = osp.join(folder, source.filename)
    if osp.isfile(target):
        why = verify(target, source)
        if not why:
            return target, False
        print(f"{target} does not match ({why}); downloading it again")
        os.unlink(target)
    if mirror:
        url = mirror.rstrip("/") + "/" + source.filename
    elif source.url:
        url = source.url
    elif source.drive_id:
        url = ""
    else:
        raise DownloadError(f"{source.filename} cannot be downloaded automatically")
    os.makedirs(folder, exist_ok=True)
    part = target + ".part"
    if url:
        http_download(url, part, source.filename, progress)
    else:
        drive_download(source.drive_id, part, source.filename, progress)
    why = verify(part, source)
    if why:
        os.unlink(part)
        raise DownloadError(f"Downloaded {source.filename} from {url or 'Google Drive'}, but it does not "
                            f"match: {why}. The file was discarded; run the same command again to "
                            "download it anew, or get it from elsewhere (--mirror, or --from; DATASETS.md)")
    os.replace(part, target)
    return target, True
