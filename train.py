"""Train or evaluate a registered trainer on a registered dataset.

The command line is CoOp's:

    python train.py --root DATA --seed 1 --trainer CoOp \
        --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/CoOp/rn50.yaml \
        --output-dir output/caltech101/CoOp/rn50/seed1 \
        DATASET.NUM_SHOTS 16

Config = ``default_cfg()`` (Dassl's defaults and this project's keys), then the
dataset file, the method file, the flags, then the trailing ``KEY VALUE`` overrides
(runs/command.py).

Several processes (GPUs) train one model with the same command under torchrun:
``torchrun --nproc_per_node N train.py ...`` (trainers/distributed.py).
"""
import glob
import os
import os.path as osp
import shutil
import sys
import time

import torch

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from dassl.data.datasets import DATASET_REGISTRY
from dassl.engine import TRAINER_REGISTRY, build_trainer
from dassl.utils import (
    CheckpointFileError,
    check_availability,
    collect_env_info,
    set_random_seed,
    setup_logger,
    trust_checkpoints,
)
from datasets.errors import ConfigError, DataFileError
from runs.command import UsageError, build_parser, setup_cfg
from runs.config_checks import validate_cfg
from runs.errors import FolderInUseError
from runs.lock import LOCK_NAME, lock_output_dir
from runs.state import FINISHED, completed_epochs, run_state
from trainers.distributed import broadcast_object, init_distributed, is_main_process, world_size
from trainers.prompt_trainer import CheckpointError


def print_args(args, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__):
        print(f"{key}: {args.__dict__[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def check_names(cfg):
    """Unknown trainer or dataset names fail before any work is done."""
    try:
        check_availability(cfg.TRAINER.NAME, TRAINER_REGISTRY.registered_names())
    except ValueError as e:
        raise UsageError(f"unknown trainer (--trainer / TRAINER.NAME): {e}") from None
    try:
        check_availability(cfg.DATASET.NAME, DATASET_REGISTRY.registered_names())
    except ValueError as e:
        raise UsageError(f"unknown dataset (DATASET.NAME): {e}") from None


def check_output_dir(cfg, args):
    """Never overwrite another run: an unfinished run resumes (the trainer
    loads its checkpoints); a finished one is refused."""
    if args.eval_only or args.no_train:
        return
    folder = cfg.RESUME or cfg.OUTPUT_DIR
    done = completed_epochs(folder)
    if done >= cfg.OPTIM.MAX_EPOCH and run_state(folder).state == FINISHED:
        raise UsageError(
            f"{cfg.OUTPUT_DIR} already holds a finished run ({done} of {cfg.OPTIM.MAX_EPOCH} "
            "epochs). Choose another --output-dir, or delete that folder to train again; "
            "to evaluate it use --eval-only --model-dir " + cfg.OUTPUT_DIR
        )
    if done >= cfg.OPTIM.MAX_EPOCH:  # stopped during its final evaluation
        print(f"The run in {cfg.OUTPUT_DIR} has all its {done} epochs but no final result: "
              "evaluating it")
    elif done > 0:
        print(f"Resuming the unfinished run in {cfg.OUTPUT_DIR} after epoch {done}")


def lock_for_all_processes(folder):
    """Rank 0 takes the output folder's lock (runs/lock.py); every rank learns whether it
    did, so that all stop together when another run holds it."""
    refused = None
    if is_main_process():
        try:
            lock_output_dir(folder)
        except FolderInUseError as error:
            refused = str(error)
    refused = broadcast_object(refused)
    if refused:
        raise FolderInUseError(refused)


def join_processes(cfg):
    """Under torchrun: join the other processes; only rank 0 prints and logs, and an
    unseeded run takes rank 0's fresh seed (the ranks must draw one order of the data)."""
    processes = init_distributed(cfg.USE_CUDA)
    if processes == 1:
        return cfg
    if not is_main_process():
        sys.stdout = open(os.devnull, "w")
    print(f"Training with {processes} processes (torchrun): each encodes 1/{processes} of "
          "every batch and of the class prompts")
    if cfg.SEED < 0:
        cfg.defrost()
        cfg.SEED = broadcast_object(int.from_bytes(os.urandom(4), "little") % 2**31)
        cfg.freeze()
        print(f"Unseeded run with several processes: all use the seed {cfg.SEED}")
    return cfg


def forget_failed_start(folder, before, since):
    """Remove what a run that stopped on an error before saving a checkpoint added to its
    output folder (its log, its lock file, the folder if it made it): a failed start must not
    read as an interrupted run, nor add a log to one (runs/state.py). ``before``: the folder's
    entries at the start (None: there was no folder); ``since``: the time of the start."""
    if not folder or not osp.isdir(folder) or any(
            osp.getmtime(p) >= since for p in glob.glob(osp.join(folder, "*", "checkpoint"))):
        return
    for name in set(os.listdir(folder)) - (before or set()):
        path = osp.join(folder, name)
        if name == LOCK_NAME or name.startswith("log.txt"):
            os.unlink(path)
        elif name == "tensorboard" and osp.isdir(path):
            shutil.rmtree(path)
    if before is None and not os.listdir(folder):
        os.rmdir(folder)


# The output folder and its entries before this process touched it (forget_failed_start).
STARTED = {}


def main(args):
    cfg = setup_cfg(args)
    check_names(cfg)
    validate_cfg(cfg)
    cfg = join_processes(cfg)
    if is_main_process():
        folder = osp.abspath(cfg.OUTPUT_DIR)
        STARTED.update(folder=folder, before=set(os.listdir(folder)) if osp.isdir(folder) else None,
                       since=time.time())
    lock_for_all_processes(cfg.OUTPUT_DIR)  # before looking at its checkpoints: one run per folder
    check_output_dir(cfg, args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if is_main_process():
        setup_logger(cfg.OUTPUT_DIR)

    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print("Collecting env info ...")
    print(f"** System info **\n{collect_env_info()}\n")

    trainer = build_trainer(cfg)

    if args.eval_only:
        if not args.model_dir and trainer.get_model_names():
            raise UsageError(
                "--eval-only needs --model-dir DIR, the output folder of a training run, to "
                f"load the trained weights of {trainer.get_model_names()} (add --load-epoch N "
                "for a given epoch)"
            )
        try:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
        except FileNotFoundError as e:
            raise UsageError(f"--model-dir {args.model_dir}: {e}") from None
        trainer.test()
        return

    if not args.no_train:
        trainer.train()


def run(argv=None):
    args = build_parser().parse_args(argv)
    if args.trust_checkpoint:
        trust_checkpoints()
    try:
        main(args)
        if world_size() > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    except FolderInUseError as e:  # the folder is another run's: touch nothing in it
        print(f"train.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    # OSError: missing or unreadable data; those messages name the file and the fix.
    except (UsageError, ConfigError, CheckpointError, CheckpointFileError, DataFileError, OSError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        if STARTED:
            forget_failed_start(STARTED["folder"], STARTED["before"], STARTED["since"])
        sys.exit(2)
    except FloatingPointError as e:  # the loss diverged (the message says where and what now)
        print(f"train.py: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
