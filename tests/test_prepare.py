"""datasets.prepare against a local HTTP server on 127.0.0.1 (the --mirror override):
download, resume, checksums, second runs, alternative layouts, --check on all 15 datasets."""
import dataclasses
import hashlib
import http.server
import json
import os
import os.path as osp
import shutil
import tarfile
import threading
import zipfile

import pytest

from datasets import prepare as prep
from datasets.sources import SOURCES
from tests import dataset_trees
from tests.test_datasets import build


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files``; honours Range; the first request of a name in ``cut`` gets half; a name
    in ``unsized`` gets half of its bytes with no Content-Length, as if the connection closed
    early; ``pages`` are served with status 200 in place of the files they name."""
    files, cut, log, unsized, pages = {}, set(), [], set(), {}

    def do_GET(self):
        name = self.path.lstrip("/")
        self.log.append((name, self.headers.get("Range")))
        body = self.pages.get(name, self.files.get(name))
        if body is None:
            self.send_error(404)
            return
        if name in self.unsized:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in self.cut:
            self.cut.discard(name)
            self.wfile.write(body[start:len(body) // 2])
        else:
            self.wfile.write(body[start:])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def tar_folder(folder, arcname, path):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return open(path, "rb").read()


def zip_folder(folder, path):
    with zipfile.ZipFile(path, "w") as zf:
        for dirpath, _, files in os.walk(folder):
            for f in sorted(files):
                full = osp.join(dirpath, f)
                zf.write(full, osp.relpath(full, osp.dirname(folder)))
    return open(path, "rb").read()


@pytest.fixture(scope="module")
def served(tmp_path_factory, mirror):
    """Fake DTD (tar.gz), EuroSAT (zip) and StanfordCars split served under their real file names."""
    work = tmp_path_factory.mktemp("upstream")
    for name in ("DescribableTextures", "EuroSAT", "StanfordCars"):
        dataset_trees.BUILDERS[name](str(work))
        build(name, work)  # writes the split file, as upstream published it
    files = {}
    for name, folder in (("DescribableTextures", "dtd"), ("EuroSAT", "eurosat"),
                         ("StanfordCars", "stanford_cars")):
        split = f"split_zhou_{name}.json"
        files[split] = open(work / folder / split, "rb").read()
    os.makedirs(work / "dtd" / "imdb")
    open(work / "dtd" / "imdb" / "imdb.mat", "w").write("x")
    shutil.rmtree(work / "dtd" / "split_fewshot")
    os.remove(work / "dtd" / "split_zhou_DescribableTextures.json")
    files["dtd-r1.0.1.tar.gz"] = tar_folder(work / "dtd", "dtd", work / "dtd.tgz")
    files["EuroSAT.zip"] = zip_folder(str(work / "eurosat" / "2750"), work / "EuroSAT.zip")
    _Handler.files = files
    # The fakes stand for the real archives: their recorded MD5s become the fakes' own.
    fakes = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    with pytest.MonkeyPatch.context() as patch:
        for name, sources in SOURCES.items():
            patch.setitem(SOURCES, name, [dataclasses.replace(s, md5=fakes[s.filename])
                                          if s.md5 and s.filename in fakes else s for s in sources])
        yield {"url": mirror, "work": work}


def tree(folder):
    return sorted(osp.relpath(osp.join(d, f), folder) for d, ds, fs in os.walk(folder) for f in fs + ds)


def run(capsys, *args):
    code = prep.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_fresh_download_then_second_run_downloads_nothing(served, tmp_path, capsys):
    root = tmp_path / "data"
    _Handler.log.clear()
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"])
    assert code == 0, out
    assert sorted(n for n, _ in _Handler.log) == ["dtd-r1.0.1.tar.gz", "split_zhou_DescribableTextures.json"]
    row = next(line for line in out.splitlines() if line.startswith("DescribableTextures"))
    assert row.split()[1:6] == ["prepared", "2", "6", "3", "6"]  # 3 classes: 2 / 1 / 2 images each
    assert sorted(os.listdir(tmp_path)) == ["data"] and sorted(os.listdir(root)) == ["dtd"]
    assert sorted(os.listdir(root / "dtd")) == ["images", "imdb", "split_fewshot",
                                                "split_zhou_DescribableTextures.json"]
    ds = build("DescribableTextures", root)
    assert len(ds.train_x) == 6 and ds.classnames == ["banded", "dotted", "zigzagged"]

    _Handler.log.clear()
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"])
    assert code == 0 and _Handler.log == []
    assert "already complete" in out and "nothing downloaded" in out


def test_resume_after_a_cut_connection(served, tmp_path, capsys):
    _Handler.log.clear()
    _Handler.cut = {"EuroSAT.zip"}
    code, out = run(capsys, "EuroSAT", "--root", tmp_path / "data", "--mirror", served["url"])
    assert code == 0, out
    half = len(_Handler.files["EuroSAT.zip"]) // 2
    assert [entry for entry in _Handler.log if entry[0] == "EuroSAT.zip"] == [
        ("EuroSAT.zip", None), ("EuroSAT.zip", f"bytes={half}-")]
    assert "connection cut" in out
    assert len(os.listdir(tmp_path / "data" / "eurosat" / "2750")) == 4
    assert len(build("EuroSAT", tmp_path / "data").test) == 8


def test_checksum_mismatch_discards_the_file_and_names_it(served, tmp_path, capsys, monkeypatch):
    wrong = [dataclasses.replace(s, sha256="0" * 64) if s.filename.endswith(".json") else s
             for s in SOURCES["EuroSAT"]]
    monkeypatch.setitem(SOURCES, "EuroSAT", wrong)
    root = tmp_path / "data"
    code, out = run(capsys, "EuroSAT", "--root", root, "--mirror", served["url"])
    assert code == 1
    assert "split_zhou_EuroSAT.json" in out and "does not match" in out and "discarded" in out
    assert not osp.exists(root / ".downloads")  # neither the file nor its .part is kept
    assert not osp.exists(root / "eurosat" / "split_zhou_EuroSAT.json")


def test_existing_files_are_replaced_only_with_force(served, tmp_path, capsys):
    root = tmp_path / "data"
    os.makedirs(root / "dtd" / "imdb")
    open(root / "dtd" / "imdb" / "mine.txt", "w").write("keep me")
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"])
    assert code == 1 and osp.join(root, "dtd", "imdb") in out and "--force" in out
    assert open(root / "dtd" / "imdb" / "mine.txt").read() == "keep me"
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"], "--force")
    assert code == 0, out
    assert os.listdir(root / "dtd" / "imdb") == ["imdb.mat"]


def test_alternative_stanford_cars_layout_is_converted_and_read(served, tmp_path, capsys):
    """The popular re-upload nests the images: cars_train/cars_train/, cars_test/cars_test/."""
    original = served["work"] / "stanford_cars"
    alt = tmp_path / "download"
    for folder in ("cars_train", "cars_test"):
        shutil.copytree(original / folder, alt / folder / folder)
    images = tree(alt)
    root = tmp_path / "data"
    code, out = run(capsys, "StanfordCars", "--root", root, "--from", alt, "--mirror", served["url"])
    assert code == 0, out
    assert tree(root / "stanford_cars" / "cars_train") == sorted(os.listdir(original / "cars_train"))
    assert [p for p in tree(alt) if p.endswith(".jpg")] == []  # moved, not copied
    assert len(images) > 0
    ds = build("StanfordCars", root)
    assert len(ds.train_x) == 12 and len(ds.test) == 6
    assert ds.classnames[0] == "2000 AM General Hummer SUV"


def test_unknown_layout_names_what_was_expected_and_found(tmp_path, capsys):
    os.makedirs(tmp_path / "odd" / "pictures")
    code, out = run(capsys, "StanfordCars", "--root", tmp_path / "data", "--from", tmp_path / "odd")
    assert code == 1 and "cars_train/[cars_train/]" in out and "found pictures" in out


def test_check_reports_all_15_complete_then_names_what_was_removed(tmp_path, capsys):
    root = tmp_path / "data"
    for name, builder in dataset_trees.BUILDERS.items():
        builder(str(root))
        build(name, root)  # split files and ImageNet's preprocessed.pkl, as a first run writes them
    build("DescribableTextures", root, shots=1)
    before = tree(tmp_path)
    code, out = run(capsys, "--check", "--root", root)
    assert code == 0, out
    assert out.count(": complete") == 15 and len(SOURCES) == 15
    assert "items: train 6, val 3, test 6" in out and "shot_1-seed_1.pkl" in out
    assert "configs/datasets/dtd.yaml" in out

    os.remove(root / "eurosat" / "split_zhou_EuroSAT.json")
    shutil.rmtree(root / "food-101" / "images" / "pho")
    split = json.load(open(root / "caltech-101" / "split_zhou_Caltech101.json"))
    one_image = split["test"][0][0]
    os.remove(root / "caltech-101" / "101_ObjectCategories" / one_image)
    code, out = run(capsys, "--check", "--root", root)
    assert code == 1 and out.count(": complete") == 12
    assert "EuroSAT: incomplete" in out and "split_zhou_EuroSAT.json" in out
    assert "Food101: incomplete" in out and "pho/pho_00" in out
    assert "Caltech101: incomplete" in out and one_image in out
    assert f"next: python -m datasets.prepare EuroSAT --root {root}" in out
    assert tree(tmp_path) == [p for p in before if "pho" not in p and one_image not in p
                              and "split_zhou_EuroSAT" not in p]  # --check wrote nothing


HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"


@pytest.mark.parametrize("md5", ["recorded", "unknown"])
def test_download_cut_short_without_a_length_is_discarded_and_the_rerun_gets_it_whole(
        served, tmp_path, capsys, monkeypatch, md5):
    """Caught by its MD5 where one is recorded, otherwise by reading the archive to its end."""
    if md5 == "unknown":
        monkeypatch.setitem(SOURCES, "DescribableTextures", [
            dataclasses.replace(s, md5=None) for s in SOURCES["DescribableTextures"]])
    monkeypatch.setattr(_Handler, "unsized", {"dtd-r1.0.1.tar.gz"})
    root = tmp_path / "data"
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"])
    assert code == 1
    error = [line for line in out.splitlines() if "Error" in line]
    why = "MD5" if md5 == "recorded" else "does not read as dtd-r1.0.1.tar.gz (EOFError"
    assert len(error) == 1 and "dtd-r1.0.1.tar.gz" in error[0] and why in error[0], error
    assert "discarded" in error[0] and "run the same command again" in error[0]
    assert not osp.exists(root / ".downloads") and not osp.exists(root / "dtd" / "images")
    assert sorted(os.listdir(tmp_path)) == ["data"]
    monkeypatch.setattr(_Handler, "unsized", set())
    _Handler.log.clear()
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"])
    assert code == 0, out
    assert ("dtd-r1.0.1.tar.gz", None) in _Handler.log  # downloaded anew from its start
    assert len(build("DescribableTextures", root).train_x) == 6


def test_html_page_in_place_of_a_split_file_is_not_installed_and_an_installed_one_is_replaced(
        served, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_Handler, "pages", {"split_zhou_EuroSAT.json": HTML})
    root = tmp_path / "data"
    split = root / "eurosat" / "split_zhou_EuroSAT.json"
    code, out = run(capsys, "EuroSAT", "--root", root, "--mirror", served["url"])
    assert code == 1 and "split_zhou_EuroSAT.json" in out and "HTML page" in out
    assert not split.exists()
    monkeypatch.setattr(_Handler, "pages", {})
    code, out = run(capsys, "EuroSAT", "--root", root, "--mirror", served["url"])
    assert code == 0, out
    good = split.read_bytes()
    split.write_bytes(HTML)  # as a run before this fix installed it
    code, out = run(capsys, "EuroSAT", "--root", root, "--mirror", served["url"])
    assert code == 0, out
    assert "is not a valid split_zhou_EuroSAT.json" in out and "replacing it" in out
    assert split.read_bytes() == good
    assert len(build("EuroSAT", root).test) == 8


@pytest.mark.parametrize("content, why", [
    (b'{"train": [], "val": [], "test": []}', "without non-empty"),
    (b'["train", "val", "test"]', "without non-empty"),
    (b'{"train": [["a.jpg", 0, "a"]]', "JSONDecodeError")])
def test_split_file_must_parse_with_train_val_test_lists(tmp_path, content, why):
    from datasets.download import verify

    path = tmp_path / "split_zhou_EuroSAT.json"
    path.write_bytes(content)
    source = next(s for s in SOURCES["EuroSAT"] if s.filename == path.name)
    assert why in verify(str(path), source)


def test_archive_with_a_chain_of_links_is_refused_and_nothing_leaves_the_root(
        served, tmp_path, capsys, monkeypatch):
    """``r/``, ``p -> q/r/../..``, ``q -> .``: extracted, ``p`` would point above the folder and a
    later run would write its few-shot cache through it."""
    import io

    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        for name, kind, target in (("dtd/images/banded/a.jpg", tarfile.REGTYPE, ""),
                                   ("dtd/r", tarfile.DIRTYPE, ""), ("dtd/p", tarfile.SYMTYPE, "q/r/../.."),
                                   ("dtd/q", tarfile.SYMTYPE, ".")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    monkeypatch.setitem(_Handler.files, "dtd-r1.0.1.tar.gz", body.getvalue())
    monkeypatch.setitem(SOURCES, "DescribableTextures", [
        dataclasses.replace(s, md5=None) for s in SOURCES["DescribableTextures"]])
    root = tmp_path / "data"
    code, out = run(capsys, "DescribableTextures", "--root", root, "--mirror", served["url"])
    assert code == 1 and "prepared" not in out
    error = [line for line in out.splitlines() if "Error" in line]
    assert len(error) == 1 and "'dtd/p' is a link" in error[0] and "dtd-r1.0.1.tar.gz" in error[0]
    assert sorted(os.listdir(tmp_path)) == ["data"]
    walked = [osp.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs]
    assert [p for p in walked if osp.islink(p)] == []
    assert not [p for p in walked if ".extract-" in p]  # the staging folder is gone
