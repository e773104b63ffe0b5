"""Errors a user can fix from the command line or the config: train.py reports them
in one line (``train.py: error: ...``) instead of a traceback."""


class ConfigError(ValueError):
    """A config value that cannot work (unknown backbone, wrong input size, ...)."""


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model being built (and says why)."""


class FolderInUseError(ConfigError):
    """Another live process holds the output folder (runs/lock.py)."""


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside the extraction folder (datasets/archives.py)."""


class DownloadError(RuntimeError):
    """A download that failed, was cut off or does not match its recorded size or hash."""


class GridError(ConfigError):
    """A grid the protocols cannot run: unknown method or dataset, a shot count
    outside the protocol, a test whose training run has not finished (runs/grid.py)."""
