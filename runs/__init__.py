"""Run infrastructure shared by train.py, the trainers and the tools: the errors a
user can fix (``errors``), settings refused before any work (``config_checks``) and
one run per output folder (``lock``)."""
