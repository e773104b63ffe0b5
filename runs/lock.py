"""One run per output folder.

``train.py`` holds an exclusive ``flock`` on ``OUTPUT_DIR/.lock`` for as long as it
runs; the file records who holds it. A second process on the same folder is
refused with that record. The kernel drops the lock when its process dies, so a
lock left by a killed run is simply taken over (with a note). ``flock`` is
advisory and local: processes on other machines sharing the folder over NFS
may not see it.
"""
import atexit
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time

from .errors import FolderInUseError

LOCK_NAME = ".lock"
_held = {}  # folder -> open file: the lock lives as long as this process holds the file


def lock_output_dir(folder):
    folder = osp.abspath(folder)
    if folder in _held:
        return
    os.makedirs(folder, exist_ok=True)
    handle = open(osp.join(folder, LOCK_NAME), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(_read_record(handle))
        handle.close()
        raise FolderInUseError(
            f"the output folder {folder} is in use by {holder}; wait for that run to finish "
            "(or stop it), or choose another --output-dir") from None
    previous = _read_record(handle)
    if previous and previous.get("pid") != os.getpid():
        print(f"Taking over the lock of {folder} left by {_describe(previous)}, which is "
              "no longer running")
    handle.seek(0)
    handle.truncate()
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime(
        "%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}, handle)
    handle.flush()
    _held[folder] = handle
    atexit.register(_release, folder)


def _release(folder):
    """A run that ends normally clears its record: a record found later means a killed run."""
    handle = _held.pop(folder, None)
    if handle is not None:
        handle.seek(0)
        handle.truncate()
        handle.close()  # closing drops the flock


def _read_record(handle):
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}


def _describe(record):
    if not record:
        return "another process"
    return (f"process {record.get('pid')} on {record.get('host')} (started "
            f"{record.get('started')}: {record.get('command')})")
