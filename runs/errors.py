"""The runs' own errors, reported in one line like datasets/errors.py's ``ConfigError``."""
from datasets.errors import ConfigError


class FolderInUseError(ConfigError):
    """Another live process holds the output folder (runs/lock.py)."""


class GridError(ConfigError):
    """A grid the protocols cannot run: unknown method or dataset, a shot count
    outside the protocol, a test whose training run has not finished (runs/grid.py)."""
