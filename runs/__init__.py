"""Run infrastructure shared by train.py, the trainers and the tools: the errors a
user can fix (``errors``), settings refused before any work (``config_checks``),
one run per output folder (``lock``), a run folder's state (``state``) and the
protocols' jobs (``grid``)."""
