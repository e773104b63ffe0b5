"""Extract tar and zip archives without letting a member land outside the destination.

A downloaded archive is untrusted input: a member named ``../x`` or ``/etc/x``,
or a link pointing out of the folder, would write anywhere the user can write.
Every member is checked by hand before it is written (the same rules on every
Python version), and tar members then go through the standard library's
``data`` extraction filter where it exists (Python 3.12, 3.11.4+) as a second
line of defence.
"""
import os
import os.path as osp
import posixpath
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


def check_member(archive, dest, name, link_target=None, hard_link=False):
    """Raise unless member ``name`` (and its link target, if any) stays inside ``dest``."""
    if name.startswith(("/", "\\")) or osp.isabs(name) or (len(name) > 1 and name[1] == ":"):
        _refuse(archive, name, "has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        _refuse(archive, name, "has a '..' component")
    real_dest = osp.realpath(dest)
    # realpath also follows links extracted earlier, so a member cannot write through one.
    if not _inside(osp.realpath(osp.join(dest, name)), real_dest):
        _refuse(archive, name, "resolves outside the destination")
    if link_target is not None:
        if link_target.startswith(("/", "\\")) or osp.isabs(link_target):
            _refuse(archive, name, f"is a link to the absolute path {link_target!r}")
        # A hard link's target is relative to the archive root, a symlink's to its own folder.
        base = dest if hard_link else osp.join(dest, posixpath.dirname(name))
        if not _inside(osp.realpath(osp.join(base, link_target)), real_dest):
            _refuse(archive, name, f"is a link to {link_target!r}, outside the destination")


def _extract_tar(archive, dest, bar):
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.issym() or member.islnk():
                check_member(archive, dest, member.name, member.linkname, hard_link=member.islnk())
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
                target = zf.read(info).decode("utf-8", "replace")
                check_member(archive, dest, info.filename, target)
                path = osp.join(dest, info.filename)
                os.makedirs(osp.dirname(path), exist_ok=True)
                os.symlink(target, path)
            else:
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
