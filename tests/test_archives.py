"""datasets/archives.py: archives extract inside their destination, or not at all."""
import io
import os
import stat
import tarfile
import zipfile

import pytest

from datasets.archives import extract
from datasets.errors import UnsafeArchiveError


def make_tar(path, members):
    """members: [(name, kind, payload)] with kind 'file' (payload bytes), 'sym' or 'hard' (target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
    return str(path)


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, kind, payload in members:
            info = zipfile.ZipInfo(name)
            if kind == "sym":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                payload = payload.encode()
            zf.writestr(info, payload)
    return str(path)


BAD = [("../x", "file", b"evil"), ("/abs/x", "file", b"evil"), ("etc_link", "sym", "/etc"),
       ("up_link", "sym", "../../outside"), ("hard", "hard", "../x")]


CASES = [(m, b) for m in (make_tar, make_zip) for b in BAD if not (m is make_zip and b[1] == "hard")]


@pytest.mark.parametrize("maker, bad", CASES, ids=[f"{m.__name__}-{b[0]}" for m, b in CASES])
def test_member_escaping_the_destination_is_refused_by_name(tmp_path, maker, bad):
    archive = maker(tmp_path / ("a.tar.gz" if maker is make_tar else "a.zip"),
                    [("ok/first.txt", "file", b"fine"), bad, ("ok/last.txt", "file", b"late")])
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archive, str(dest), progress=False)
    assert repr(bad[0]) in str(info.value) and archive in str(info.value)
    # nothing outside the destination; the refused member and those after it are not written
    assert sorted(os.listdir(tmp_path / "box")) == ["dest"]
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz" if maker is make_tar else "a.zip", "box"]
    assert not (dest / "ok" / "last.txt").exists() and not os.path.lexists(dest / bad[0].lstrip("/"))


@pytest.mark.parametrize("maker", [make_tar, make_zip])
def test_safe_archive_extracts(tmp_path, maker):
    archive = maker(tmp_path / ("a.tar" if maker is make_tar else "a.zip"),
                    [("d/a.txt", "file", b"alpha"), ("d/sub/b.txt", "file", b"beta")])
    extract(archive, str(tmp_path / "out"), progress=False)
    assert (tmp_path / "out" / "d" / "sub" / "b.txt").read_bytes() == b"beta"
    assert (tmp_path / "out" / "d" / "a.txt").read_bytes() == b"alpha"


CHAIN = [("r/", "dir", b""), ("p", "sym", "q/r/../.."), ("q", "sym", ".")]


@pytest.mark.parametrize("maker", [make_tar, make_zip])
@pytest.mark.parametrize("members", [CHAIN, [("d/a.txt", "file", b"alpha"), ("d/link", "sym", "a.txt")]],
                         ids=["chain-out", "link-inside"])
def test_links_are_refused_a_chain_that_leads_out_and_a_harmless_one(tmp_path, maker, members):
    """``p -> q/r/../..`` looks inside while ``q`` does not exist; with ``q -> .`` it points at
    the folder above. Each link alone passes a per-link check, so no link is extracted."""
    archive = maker(tmp_path / ("a.tar.gz" if maker is make_tar else "a.zip"), members)
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archive, str(dest), progress=False)
    message = str(info.value)
    assert archive in message and "is a link" in message and "\n" not in message
    links = [os.path.join(d, n) for d, ds, fs in os.walk(tmp_path) for n in ds + fs
             if os.path.islink(os.path.join(d, n))]
    assert links == []
