"""The configuration a run used, read back from its log.

train.py prints the full config (``** Config **`` then yacs' YAML dump) at the top of
``log.txt``; the tools that rebuild a run's model (t-SNE, prompt interpretation,
training curves) read it here, once.
"""
import os.path as osp

import yaml

from datasets.errors import ConfigError
from runs.state import checkpoint_epoch

CONFIG_HEADER = "** Config **"
CONFIG_END = "Collecting env info"


def load_run_config(run_dir):
    """The run's config (a frozen CfgNode, Dassl defaults + this project's keys, then the
    values the run printed). Raises ConfigError naming the missing file."""
    from trainers.defaults import default_cfg

    log = osp.join(run_dir, "log.txt")
    if not osp.isfile(log):
        raise ConfigError(f"{run_dir} is not a run folder: it has no log.txt (train.py writes one "
                          "in every --output-dir)")
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    try:
        start = lines.index(CONFIG_HEADER) + 2  # the header, then a row of stars
    except ValueError:
        raise ConfigError(f"{log} holds no printed config (no '{CONFIG_HEADER}' line); "
                          "was it written by train.py?") from None
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(CONFIG_END)), len(lines))
    cfg = default_cfg()
    cfg.set_new_allowed(True)
    cfg.merge_from_other_cfg(type(cfg)(yaml.safe_load("\n".join(lines[start:end]))))
    cfg.freeze()
    return cfg


def latest_epoch(run_dir, model_name="prompt_learner"):
    """The epoch of the run's latest checkpoint of ``model_name`` (its pointer file, read
    by dassl's latest_checkpoint; the epoch by runs.state.checkpoint_epoch)."""
    from dassl.utils import latest_checkpoint

    path = latest_checkpoint(osp.join(run_dir, model_name))
    if path is None or not osp.isfile(path):
        raise ConfigError(f"{run_dir} has no checkpoint of {model_name} ({model_name}/checkpoint "
                          "names the latest; is this a finished training run?)")
    return checkpoint_epoch(path)


def rebuild_trainer(run_dir, *opts, root="", epoch=None):
    """The trainer of a training run, rebuilt from its printed config with ``opts``
    (KEY VALUE overrides, e.g. DATASET.SUBSAMPLE_CLASSES new) and its prompt learner's
    weights loaded (the latest checkpoint unless ``epoch``)."""
    import datasets  # noqa: F401  (registers the datasets)
    import trainers  # noqa: F401  (registers the trainers)
    from dassl.engine import build_trainer

    cfg = load_run_config(run_dir).clone()
    cfg.defrost()
    if root:
        cfg.DATASET.ROOT = root
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    trainer = build_trainer(cfg)
    if trainer.get_model_names():
        trainer.load_model(run_dir, epoch=epoch or latest_epoch(run_dir))
    trainer.set_model_mode("eval")
    return trainer
