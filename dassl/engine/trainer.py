"""Trainer base classes (upstream ``dassl.engine.trainer``).

A trainer is a set of hooks: ``build_model`` registers the trainable modules,
``forward_backward`` runs one step, ``model_inference`` gives logits. The loop,
logging, checkpoints, resumption and evaluation live here.

Beyond upstream (no signature changes):
- every epoch ends with a checkpoint that an interrupted run resumes from; it
  holds every random state (Python, NumPy, torch) and the best validation
  result, so that a resumed run ends with exactly the weights of an
  uninterrupted one. The per-epoch file is removed again at the next epoch
  unless TRAIN.CHECKPOINT_FREQ keeps it, so the folder ends as upstream's would;
- SIGINT or SIGTERM during training stops the run at the end of the current
  batch with a resumable mid-epoch checkpoint (``model.pth.tar-interrupted``,
  with the batch position and the random states of the epoch's start and of
  that moment); running the same command again resumes it exactly: the epoch's
  batches are drawn again from its starting state, those already done are
  skipped without computing. A second signal stops at once;
- a loss that is not finite stops the run naming the epoch, the batch and the
  loss terms; nothing of that step is applied and no checkpoint is written
  after it, so the last epoch's checkpoint is the last good state;
- evaluation shows a progress bar;
- a trainer whose ``processes`` is a process group (the project's trainers set it
  for ``torchrun``) has rank 0 alone write checkpoints and tensorboard; the ranks
  agree on their random state at each epoch's start and on stopping after a
  signal, an interrupted checkpoint holds every rank's random state, and
  evaluation gathers each rank's share of the set before the metrics. By default
  there is one process (``OneProcess``) and none of this does anything.
"""
import datetime
import os
import os.path as osp
import signal
import threading
import time
from collections import OrderedDict

import numpy as np
import torch
from tqdm import tqdm

from dassl.data import DataManager
from dassl.evaluation import build_evaluator
from dassl.utils import (
    AverageMeter,
    MetricMeter,
    atomic_write,
    get_rng_state,
    latest_checkpoint,
    load_checkpoint,
    mkdir_if_missing,
    resume_from_checkpoint,
    run_checkpoint,
    save_checkpoint,
    set_rng_state,
    state_dict_of,
    tolist_if_not,
    write_run_manifest,
)
from dassl.utils.torchtools import CheckpointFileError

INTERRUPTED_CHECKPOINT = "model.pth.tar-interrupted"


class OneProcess:
    """The collectives the loop uses, for a single process: identities and no-ops. A
    trainer run by several processes sets ``processes`` to an object (or module) with
    the same functions over its process group."""

    @staticmethod
    def world_size():
        return 1

    @staticmethod
    def rank():
        return 0

    @staticmethod
    def barrier():
        pass

    @staticmethod
    def broadcast_object(obj):
        return obj

    @staticmethod
    def all_gather_object(obj):
        return [obj]

    @staticmethod
    def any_process(flag):
        return bool(flag)

    @staticmethod
    def gather_rows(tensor):
        return tensor


class TrainerBase:
    """Registered models, their optimizers and schedulers, and the epoch loop."""

    processes = OneProcess

    def __init__(self):
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self._writer = None
        self._interrupt_signal = None  # set by a SIGINT / SIGTERM during training
        self._resume_position = None  # (batches done, random state) of a mid-epoch resume

    def register_model(self, name="model", model=None, optim=None, sched=None):
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        assert name not in self._models, "Found duplicate model names"
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        names_real = list(self._models.keys())
        if names is not None:
            names = tolist_if_not(names)
            for name in names:
                assert name in names_real, f"Unknown model name [{name}]; registered: {names_real}"
            return names
        return names_real

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self):
        """Extra state written into every checkpoint so that a run resumes exactly;
        ``restore_extra_state`` reads it back. A trainer with state of its own extends both."""
        return {"rng_state": get_rng_state(), "best_result": getattr(self, "best_result", None)}

    def restore_extra_state(self, checkpoint):
        """Resume from the latest checkpoint (loaded): its random state of the moment it
        was written, so that the resumed epochs draw what the uninterrupted run drew
        (sampler order, augmentations, dropout), and the best validation result."""
        if "batch" in checkpoint:  # interrupted mid-epoch (save_interrupted)
            set_rng_state(checkpoint["epoch_rng_state"])
            self._resume_position = (checkpoint["batch"], self._own_rng_state(checkpoint))
            print(f"Resuming epoch {checkpoint['epoch'] + 1} after its batch {checkpoint['batch']} "
                  "(the batches done are drawn again and skipped)")
        elif "rng_state" in checkpoint:
            set_rng_state(checkpoint["rng_state"])
            print("Restored the random state of the checkpoint")
        if checkpoint.get("best_result") is not None:
            self.best_result = checkpoint["best_result"]

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        self._save_models(epoch + 1, directory, is_best, val_result, model_name,
                          self.extra_state())

    def save_interrupted(self, directory):
        """A checkpoint after the current batch, from which the epoch resumes exactly."""
        extra = {**self.extra_state(), "batch": self.batch_idx + 1,
                 "epoch_rng_state": self._epoch_rng_state}
        if self.processes.world_size() > 1:  # each rank drew its own augmentations
            extra["rank_rng_states"] = self.processes.all_gather_object(extra["rng_state"])
        # "epoch" is the epoch in progress: resuming starts there.
        self._save_models(self.epoch, directory, False, None, INTERRUPTED_CHECKPOINT, extra)
        self.processes.barrier()  # no rank exits (and has torchrun stop the others) first

    def _save_models(self, epoch_field, directory, is_best, val_result, model_name, extra):
        if self.processes.rank() != 0:
            return
        for name in self.get_model_names():
            model_dict = self._models[name].state_dict()
            optim_dict = self._optims[name].state_dict() if self._optims[name] is not None else None
            sched_dict = self._scheds[name].state_dict() if self._scheds[name] is not None else None
            state = {
                "state_dict": model_dict,
                "epoch": epoch_field,
                "optimizer": optim_dict,
                "scheduler": sched_dict,
                "val_result": val_result,
            }
            state.update(extra)
            save_checkpoint(state, osp.join(directory, name), is_best=is_best,
                            model_name=model_name)
        # Last: the run's state is this file in every model's folder (run_checkpoint).
        write_run_manifest(directory, self.get_model_names(),
                           model_name or f"model.pth.tar-{epoch_field}")

    def resume_model_if_exist(self, directory):
        names = self.get_model_names()
        if not names or any(
            not osp.exists(osp.join(directory, name, "checkpoint")) for name in names
        ):
            print("No checkpoint found, train from scratch")
            return 0

        print(f"Found checkpoint at {directory} (will resume training)")
        file, disagreement = run_checkpoint(directory, names)
        if disagreement:  # stopped between two models' saves: every model goes back to one file
            print(f"Note: the models' checkpoints in {directory} are of different moments "
                  f"({disagreement}), as when a run is stopped while saving; resuming all of "
                  f"them from {file}, the latest that every model holds")
            for name in names:
                with atomic_write(osp.join(directory, name, "checkpoint"), "w") as f:
                    f.write(f"{file}\n")
        start_epoch = 0
        for name in names:
            path = osp.join(directory, name)
            start_epoch = resume_from_checkpoint(
                path, self._models[name], self._optims[name], self._scheds[name]
            )
        self.restore_extra_state(load_checkpoint(latest_checkpoint(osp.join(directory, names[0]))))
        return start_epoch

    def _own_rng_state(self, checkpoint):
        """This rank's random state in an interrupted checkpoint."""
        states = checkpoint.get("rank_rng_states", [checkpoint["rng_state"]])
        if len(states) != self.processes.world_size():
            raise CheckpointFileError(
                f"the run was interrupted with {len(states)} process(es) and resumes with "
                f"{self.processes.world_size()}: resume a mid-epoch interruption with as many "
                "processes")
        return states[self.processes.rank()]

    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return

        names = self.get_model_names()
        model_file = "model-best.pth.tar"
        if epoch is not None:
            model_file = "model.pth.tar-" + str(epoch)

        for name in names:
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise FileNotFoundError(f'Model not found at "{model_path}"')
            checkpoint = load_checkpoint(model_path)
            state_dict = state_dict_of(checkpoint, model_path)
            epoch = checkpoint["epoch"]
            val_result = checkpoint.get("val_result")
            val_text = "None" if val_result is None else f"{val_result:.1f}"
            print(f'Load {model_path} to {name} (epoch={epoch}, val_result={val_text})')
            self._models[name].load_state_dict(state_dict)

    # ------------------------------------------------------------------ modes and steps
    def set_model_mode(self, mode="train", names=None):
        names = self.get_model_names(names)
        for name in names:
            if mode == "train":
                self._models[name].train()
            elif mode in ["test", "eval"]:
                self._models[name].eval()
            else:
                raise KeyError(f"Unknown model mode [{mode}]; use 'train' or 'eval'")

    def update_lr(self, names=None):
        names = self.get_model_names(names)
        for name in names:
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss):
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def init_writer(self, log_dir):
        if self.__dict__.get("_writer") is None or self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            print(f"Initialize tensorboard (log_dir={log_dir})")
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self):
        if self._writer is not None:
            self._writer.close()

    def write_scalar(self, tag, scalar_value, global_step=None):
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch, max_epoch):
        """Generic training loop."""
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch

        self.before_train()
        previous_handlers = self._catch_interrupts()
        try:
            for self.epoch in range(self.start_epoch, self.max_epoch):
                self.before_epoch()
                self.run_epoch()
                self.after_epoch()
                if self._interrupted():  # arrived during the evaluation
                    self._stop(f"at the end of epoch {self.epoch + 1}")
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        self.after_train()

    # ------------------------------------------------------------------ interruption
    def _catch_interrupts(self):
        """SIGINT / SIGTERM: finish the batch, checkpoint, exit (see the module's doc)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        # Data-loader workers are forked with this handler; only this process acts.
        self._interrupt_pid = os.getpid()
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_interrupt)
            # System calls in progress restart (a collective of several processes, in C++,
            # would otherwise fail on the interruption).
            signal.siginterrupt(signum, False)
        return previous

    def _on_interrupt(self, signum, frame):
        if os.getpid() != self._interrupt_pid:  # a data-loader worker: the main process decides
            return
        if self._interrupt_signal is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        self._interrupt_signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this batch with a "
              "resumable checkpoint (send it again to stop at once)", flush=True)

    def _interrupted(self):
        """Whether a signal arrived (on any rank: all ranks stop at the same batch)."""
        if self.processes.any_process(self._interrupt_signal is not None):
            self._interrupt_signal = self._interrupt_signal or signal.SIGTERM
        return self._interrupt_signal is not None

    def _stop(self, where):
        name = signal.Signals(self._interrupt_signal).name
        print(f"Interrupted by {name} {where}: a resumable checkpoint is in "
              f"{self.output_dir}. Run the same command again to resume.", flush=True)
        raise SystemExit(128 + self._interrupt_signal)

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def run_epoch(self):
        raise NotImplementedError

    def test(self):
        raise NotImplementedError

    def parse_batch_train(self, batch):
        raise NotImplementedError

    def parse_batch_test(self, batch):
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    def model_zero_grad(self, names=None):
        names = self.get_model_names(names)
        for name in names:
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss):
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None):
        names = self.get_model_names(names)
        for name in names:
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(TrainerBase):
    """A trainer with one data manager, an evaluator and the standard hooks."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)

        if torch.cuda.is_available() and cfg.USE_CUDA:
            self.device = torch.device("cuda")
        else:
            self.device = torch.device("cpu")

        # Save as attributes some frequently used variables
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR

        self.cfg = cfg
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -np.inf

    def check_cfg(self, cfg):
        """Check whether some variables are set correctly for the trainer
        (e.g. a trainer that needs a particular sampler)."""
        pass

    def build_data_loader(self):
        """Create the data loaders (override to build them differently)."""
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u  # optional, can be None
        self.val_loader = dm.val_loader  # optional, can be None
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname  # dict {label: classname}
        self.dm = dm

    def build_model(self):
        raise NotImplementedError(
            f"{type(self).__name__} must implement build_model(): this compact dassl/ has no "
            "backbone zoo (SimpleNet); build the model and call self.register_model(...)"
        )

    def train(self):
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self):
        directory = self.cfg.OUTPUT_DIR
        if self.cfg.RESUME:
            directory = self.cfg.RESUME
        self.start_epoch = self.resume_model_if_exist(directory)

        if self.processes.rank() == 0:
            writer_dir = osp.join(self.output_dir, "tensorboard")
            mkdir_if_missing(writer_dir)
            self.init_writer(writer_dir)

        self.time_start = time.time()

    def after_train(self):
        print("Finish training")
        self.processes.barrier()  # the checkpoints rank 0 wrote are there for every rank

        do_test = not self.cfg.TEST.NO_TEST
        if do_test:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()

        elapsed = round(time.time() - self.time_start)
        elapsed = str(datetime.timedelta(seconds=elapsed))
        print(f"Elapsed: {elapsed}")

        self.close_writer()

    def after_epoch(self):
        do_test = not self.cfg.TEST.NO_TEST
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ

        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            is_best = curr_result > self.best_result
            if is_best:
                self.best_result = curr_result
                self.save_model(self.epoch, self.output_dir, val_result=curr_result,
                                model_name="model-best.pth.tar")

        # Upstream saves only on CHECKPOINT_FREQ and at the last epoch. We save
        # every epoch so that an interrupted run can resume, then remove the
        # previous epoch's file where upstream would not have written it.
        self.check_finite_weights()
        self.save_model(self.epoch, self.output_dir)
        if self.processes.rank() != 0:
            return
        for name in self.get_model_names():  # superseded by the epoch's checkpoint
            path = osp.join(self.output_dir, name, INTERRUPTED_CHECKPOINT)
            if osp.exists(path):
                os.remove(path)
        previous = self.epoch  # the epoch count of the previous checkpoint
        kept = freq > 0 and previous % freq == 0
        if previous >= 1 and not kept:
            for name in self.get_model_names():
                path = osp.join(self.output_dir, name, f"model.pth.tar-{previous}")
                if osp.exists(path):
                    os.remove(path)

    def check_finite_weights(self):
        """Never checkpoint weights that went NaN or infinite (from a non-finite gradient).
        Parameters only: a buffer may hold NaN as "not set yet"."""
        for name in self.get_model_names():
            for key, value in self._models[name].named_parameters():
                if not torch.isfinite(value).all():
                    raise FloatingPointError(
                        f"{name}.{key} is no longer finite after epoch {self.epoch + 1}; "
                        f"{self._last_good_checkpoint()}")

    def _last_good_checkpoint(self):
        latest = latest_checkpoint(osp.join(self.output_dir, self.get_model_names()[0]))
        if latest is None:
            return "no checkpoint was written before (it happened in the first epoch)"
        return (f"the last good checkpoint, {latest}, is kept "
                "and the run resumes from it with the same command (change what diverged "
                "first: a lower OPTIM.LR, or PREC fp32 instead of fp16)")

    @torch.no_grad()
    def test(self, split=None):
        """A generic testing pipeline."""
        self.set_model_mode("eval")
        self.evaluator.reset()

        if split is None:
            split = self.cfg.TEST.SPLIT

        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"  # in case val_loader is None
            data_loader = self.test_loader

        print(f"Evaluate on the *{split}* set")

        outputs, labels = [], []
        for batch_idx, batch in enumerate(tqdm(data_loader, desc=f"eval {split}", unit="batch",
                                               disable=self.processes.rank() != 0)):
            input, label = self.parse_batch_test(batch)
            output = self.model_inference(input)
            if self.processes.world_size() == 1:
                self.evaluator.process(output, label)
            else:
                outputs.append(output)
                labels.append(label)
        if self.processes.world_size() > 1:  # every rank's share in order, less the padding
            count = len(data_loader.dataset)
            self.evaluator.process(self.processes.gather_rows(torch.cat(outputs))[:count],
                                   self.processes.gather_rows(torch.cat(labels))[:count])

        results = self.evaluator.evaluate()

        for k, v in results.items():
            tag = f"{split}/{k}"
            self.write_scalar(tag, v, self.epoch)

        return list(results.values())[0]

    def model_inference(self, input):
        return self.model(input)

    def parse_batch_test(self, batch):
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        return input, label

    def get_current_lr(self, names=None):
        names = self.get_model_names(names)
        name = names[0]
        return self._optims[name].param_groups[0]["lr"]


class TrainerX(SimpleTrainer):
    """A base trainer using labelled data only."""

    def run_epoch(self):
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        # The epoch's batches (sampler order, augmentations) follow from the random
        # state at its start: kept for a mid-epoch checkpoint, restored on resume.
        skip, state_after_skipped = self._resume_position or (0, None)
        self._resume_position = None
        if self.processes.world_size() > 1:  # rank 0's state: one order of the data for all
            set_rng_state(self.processes.broadcast_object(get_rng_state()))
        self._epoch_rng_state = get_rng_state()

        end = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            if self.batch_idx < skip:  # done before the interruption
                if self.batch_idx == skip - 1:
                    set_rng_state(state_after_skipped)
                end = time.time()
                continue
            data_time.update(time.time() - end)
            try:
                loss_summary = self.forward_backward(batch)
            except FloatingPointError as error:
                raise FloatingPointError(
                    f"training stopped at epoch {self.epoch + 1}, batch {self.batch_idx + 1}: "
                    f"{error}. Nothing of this step was applied; "
                    f"{self._last_good_checkpoint()}") from None
            batch_time.update(time.time() - end)
            losses.update(loss_summary)

            meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
            only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
            if meet_freq or only_few_batches:
                nb_remain = self.num_batches - self.batch_idx - 1
                nb_remain += (self.max_epoch - self.epoch - 1) * self.num_batches
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * nb_remain)))
                info = [
                    f"epoch [{self.epoch + 1}/{self.max_epoch}]",
                    f"batch [{self.batch_idx + 1}/{self.num_batches}]",
                    f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
                    f"data {data_time.val:.3f} ({data_time.avg:.3f})",
                    f"{losses}",
                    f"lr {self.get_current_lr():.4e}",
                    f"eta {eta}",
                ]
                print(" ".join(info))

            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.meters.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)

            if self._interrupted():
                self.save_interrupted(self.output_dir)
                self._stop(f"at epoch {self.epoch + 1}, batch {self.batch_idx + 1}")
            end = time.time()

    def parse_batch_train(self, batch):
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        domain = batch["domain"].to(self.device)
        return input, label, domain
