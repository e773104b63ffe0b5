"""OpenAI's CLIP, reimplemented: same module names, same state-dict keys, same numbers.

``from clip import clip`` gives ``clip.load``, ``clip.tokenize``, ``clip.build_model``,
``clip._MODELS`` and ``clip._download``, as CoOp-family trainers expect; this
project's code uses ``clip.model_file`` (name -> checkpoint file) and
``clip.read_state_dict`` (file -> state dict).
"""
from .clip import *
