"""A compact, API-compatible implementation of the part of Dassl.pytorch that
CoOp-family prompt-tuning code uses (see docs in README, "The dassl/ package").

Import paths, names and behaviour follow upstream Dassl so that code written for
upstream runs here unchanged, and code written here runs on upstream.
"""

__version__ = "0.6.3+compact"
