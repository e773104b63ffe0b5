"""Errors a user can fix from the command line or the config: train.py reports them in
one line (``train.py: error: ...``) instead of a traceback.

They live here, in the lowest package that raises them; the trainers and runs/ above
raise ``ConfigError`` too (runs/errors.py adds the runs' own)."""


class ConfigError(ValueError):
    """A config value that cannot work (unknown backbone, wrong input size, ...)."""


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside the extraction folder (datasets/archives.py)."""


class DataFileError(ValueError):
    """A dataset file (split, few-shot cache) that is corrupt, or refused because reading it
    could run code (datasets/cache_files.py); the message names the file and the fix."""


class DownloadError(RuntimeError):
    """A download that failed, was cut off or does not match its recorded size or hash."""
