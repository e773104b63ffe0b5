from .defaults import _C as cfg_default


def get_cfg_default():
    """A fresh copy of every default key (callers mutate and freeze it)."""
    return cfg_default.clone()
