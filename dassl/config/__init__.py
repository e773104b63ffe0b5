from .defaults import _C as cfg_default
from .defaults import UntrustedConfigError  # noqa: F401


def get_cfg_default():
    """A fresh copy of every default key (callers mutate and freeze it)."""
    return cfg_default.clone()
