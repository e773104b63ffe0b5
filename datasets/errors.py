"""Errors a user can fix from the command line or the config: train.py reports them in
one line (``train.py: error: ...``) instead of a traceback.

They live here, in the lowest package that raises them; the trainers and runs/ above
raise ``ConfigError`` too (runs/errors.py adds the runs' own)."""


class ConfigError(ValueError):
    """A config value that cannot work (unknown backbone, wrong input size, ...)."""


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside the extraction folder (datasets/archives.py)."""


class DownloadError(RuntimeError):
    """A download that failed, was cut off or does not match its recorded size or hash."""
