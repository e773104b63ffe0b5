"""Extract tar and zip archives without letting a member land outside the destination.

A downloaded archive is untrusted input: a member named ``../x`` or ``/etc/x``,
or a link pointing out of the folder, would write anywhere the user can write.
Links are refused altogether: each link can look harmless when it is made and a
chain of them still point outside (``p -> q/r/../..`` and then ``q -> .``), and
the benchmarks' archives hold none. Every other member is checked by hand before
it is written (the same rules on every Python version), and tar members then go
through the standard library's ``data`` extraction filter where it exists
(Python 3.12, 3.11.4+) as a second line of defence.
"""
import os
import os.path as osp
import shutil
import stat
import tarfile
import zipfile

from tqdm import tqdm

from datasets.errors import UnsafeArchiveError

HAS_TAR_FILTERS = hasattr(tarfile, "data_filter")


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _refuse(archive, member, why):
    raise UnsafeArchiveError(
        f"Refusing to extract {archive}: member {member!r} {why}. The archive is damaged or "
        "crafted; get it again from its source.")


def check_member(archive, dest, name):
    """Raise unless member ``name`` stays inside ``dest``."""
    if name.startswith(("/", "\\")) or osp.isabs(name) or (len(name) > 1 and name[1] == ":"):
        _refuse(archive, name, "has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        _refuse(archive, name, "has a '..' component")
    if not _inside(osp.realpath(osp.join(dest, name)), osp.realpath(dest)):
        _refuse(archive, name, "resolves outside the destination")


LINK = "is a link (to {!r}); dataset archives hold none, and links can lead outside the destination"


def _extract_tar(archive, dest, bar):
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.issym() or member.islnk():
                _refuse(archive, member.name, LINK.format(member.linkname))
            elif member.ischr() or member.isblk() or member.isfifo():
                _refuse(archive, member.name, "is a device or pipe")
            else:
                check_member(archive, dest, member.name)
            if HAS_TAR_FILTERS:
                try:
                    tar.extract(member, dest, filter="data")
                except tarfile.FilterError as e:
                    _refuse(archive, member.name, f"is refused by the 'data' filter ({e})")
            else:
                tar.extract(member, dest)
            bar.update(1)


def _extract_zip(archive, dest, bar):
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _refuse(archive, info.filename, LINK.format(zf.read(info).decode("utf-8", "replace")))
            check_member(archive, dest, info.filename)
            zf.extract(info, dest)
            bar.update(1)


def extract(archive, dest, progress=True):
    """Extract ``archive`` (any tar compression, or zip) into ``dest``; raise
    UnsafeArchiveError, naming the archive and the member, before writing a member
    that would land outside ``dest``."""
    os.makedirs(dest, exist_ok=True)
    with tqdm(desc=f"extract {osp.basename(archive)}", unit=" files", disable=not progress,
              ncols=80) as bar:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest, bar)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest, bar)
        else:
            raise ValueError(f"{archive} is neither a tar nor a zip archive (damaged download?); "
                             "delete it and run the command again")


def move_into(src, dest, force=False):
    """Move ``src`` to ``dest``; an existing ``dest`` is replaced only with ``force``."""
    if osp.lexists(dest):
        if not force:
            raise FileExistsError(f"{dest} already exists; pass --force to replace it")
        if osp.isdir(dest) and not osp.islink(dest):
            shutil.rmtree(dest)
        else:
            os.unlink(dest)
    os.makedirs(osp.dirname(dest), exist_ok=True)
    shutil.move(src, dest)
