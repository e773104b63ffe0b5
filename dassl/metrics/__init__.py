from .accuracy import compute_accuracy  # noqa: F401
