"""Tee stdout into OUTPUT_DIR/log.txt (upstream behaviour)."""
import os
import os.path as osp
import sys
import time

from .tools import mkdir_if_missing

__all__ = ["Logger", "setup_logger"]


class Logger:
    """Write everything printed both to the console and to a file.

    Results tables (``parse_test_res.py``) are read back from these files.
    """

    def __init__(self, fpath=None):
        self.console = sys.stdout
        self.file = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
            self.file = open(fpath, "w")

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def write(self, msg):
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self):
        self.console.flush()
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def isatty(self):
        return self.console.isatty()

    def fileno(self):
        return self.console.fileno()

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def setup_logger(output=None):
    """Send stdout to ``output/log.txt`` as well (``output`` may be a .txt/.log path).

    An existing log is never overwritten: the new one gets a time-stamped name
    (``log.txt-YYYY-MM-DD-HH-MM-SS``), as upstream does.
    """
    if output is None:
        return
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
        suffix = 1
        base = fpath
        while osp.exists(fpath):  # two starts in the same second
            fpath = f"{base}-{suffix}"
            suffix += 1
    sys.stdout = Logger(fpath)
