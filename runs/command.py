"""train.py's command line and the config it builds (CoOp's flags and order): Dassl's
defaults and the project's keys, then the dataset file, the method file, the flags,
then the trailing ``KEY VALUE`` overrides.

It lives here, below the programs, so that the protocol grid (runs/grid.py) and the
tools read a job's config exactly as train.py would, without importing the program.
"""
import argparse
import difflib
import os.path as osp

import yaml

from trainers.defaults import default_cfg


class UsageError(Exception):
    """A mistake in the command line or the configuration: reported without a traceback."""


def reset_cfg(cfg, args):
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    # CoOp quirk kept: "--seed 0" is falsy and leaves SEED at -1 (not seeded).
    if args.seed:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def _all_keys(node, prefix=""):
    for key, value in node.items():
        full = prefix + key
        if hasattr(value, "items"):
            yield from _all_keys(value, full + ".")
        else:
            yield full


def _yaml_problem(path):
    """Why ``path`` is not a YAML mapping of config keys ("" when it is), in one line."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(e, "problem", None) or str(e).splitlines()[0]
        tabs = "; YAML indents with spaces, not tabs" if "\\t" in why else ""
        return f"not valid YAML: {why}{where}{tabs}"
    except UnicodeDecodeError as e:
        return f"not a text file ({e})"
    if data is not None and not isinstance(data, dict):
        return (f"the file holds a YAML {type(data).__name__}; a config is a mapping of keys "
                "(for example 'OPTIM:' then '  LR: 0.002' on the next line)")
    return ""


def _merge_file(cfg, path, flag):
    if not osp.isfile(path):
        raise UsageError(f"{flag}: config file not found: {path}")
    extension = osp.splitext(path)[1]
    if extension == ".py":
        pass  # refused without the opt-in by dassl.config (yacs reads it by running it)
    elif extension not in ("", ".yaml", ".yml"):
        raise UsageError(f"{flag} {path}: a config file is YAML (.yaml or .yml)")
    else:
        why = _yaml_problem(path)
        if why:
            raise UsageError(f"{flag} {path}: {why}")
    try:
        cfg.merge_from_file(path)
    except (KeyError, AssertionError) as e:
        raise UsageError(f"{flag} {path}: {_explain_key_error(cfg, e)}") from None
    except ValueError as e:  # our dassl's UntrustedConfigError among them: its message names
        # the file (caught as ValueError, so that this runs on upstream Dassl too)
        raise UsageError(f"{flag}: {e}" if path in str(e) else f"{flag} {path}: {e}") from None


def _explain_key_error(cfg, error):
    message = str(error.args[0]) if error.args else str(error)
    if "Non-existent" not in message:
        return message
    key = message.split(":")[-1].strip()
    close = difflib.get_close_matches(key, list(_all_keys(cfg)), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown config key {key}{hint}"


def setup_cfg(args):
    cfg = default_cfg()
    if args.dataset_config_file:
        _merge_file(cfg, args.dataset_config_file, "--dataset-config-file")
    if args.config_file:
        _merge_file(cfg, args.config_file, "--config-file")
    reset_cfg(cfg, args)
    if len(args.opts) % 2 != 0:
        raise UsageError(
            f"trailing overrides must be KEY VALUE pairs; got an odd list: {args.opts}"
        )
    try:
        cfg.merge_from_list(args.opts)
    except (KeyError, AssertionError) as e:  # yacs asserts "Non-existent key: ..."
        raise UsageError(f"override: {_explain_key_error(cfg, e)}") from None
    except ValueError as e:
        raise UsageError(f"override: {e}") from None
    cfg.freeze()
    return cfg


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train or evaluate a registered trainer on a registered dataset.")
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="",
                        help="checkpoint directory (from which the training resumes)")
    parser.add_argument("--seed", type=int, default=-1,
                        help="only positive value enables a fixed seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="",
                        help="path to config file for dataset setup")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="",
                        help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int,
                        help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="fully unpickle checkpoints that hold more than tensors; this runs "
                             "code from the file (docs/SECURITY.md)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command-line")
    return parser
