"""The state of a run folder: finished, interrupted or empty, and its last epoch.

One reader for everyone who asks: train.py (never train a finished run again), the
protocol scripts and the sweep (skip, resume, which epoch a test loads), the sweep's
--status and parse_test_res.py (the result in the logs).

- a run is *finished* when its log holds the result the tables read: the accuracy
  printed after "Finish training" (a training run) or after "=> result" (an
  evaluation, ``evaluation=True``);
- it is *interrupted* when it started (a log or a checkpoint) but did not finish:
  running the same train.py command again resumes it;
- it is *empty* otherwise.

The epoch is the number of epochs the latest checkpoint holds (``latest_checkpoint``
reads the pointer that ``save_checkpoint`` writes).

    python -m runs.state DIR [--eval]     # prints e.g. "interrupted 3"
"""
import argparse
import functools
import glob
import os
import os.path as osp
import re

FINISHED, INTERRUPTED, EMPTY = "finished", "interrupted", "empty"

ACCURACY = re.compile(r"^\* accuracy: ([\.\deE+-]+)%")
TRAIN_DONE = ("Finish training", "Finished training")  # current / older Dassl
EVAL_DONE = ("=> result",)
EPOCH_CHECKPOINT = re.compile(r"^model\.pth\.tar-(\d+)$")


class RunState:
    """``state`` (FINISHED, INTERRUPTED or EMPTY), ``epoch`` (epochs held by the latest
    checkpoint, 0: none; read when asked, as it needs torch) and ``log`` (the newest log)."""

    def __init__(self, run_dir, state, log=None, evaluation=False):
        self.run_dir, self.state, self.log, self.evaluation = run_dir, state, log, evaluation

    @functools.cached_property
    def epoch(self):
        return 0 if self.evaluation else completed_epochs(self.run_dir)

    def __str__(self):
        return f"{self.state} {self.epoch}"


def log_files(run_dir):
    """The logs of a run, newest first: a resumed run writes ``log.txt-<time>`` beside
    its first ``log.txt``, and only the last one holds the final result."""
    paths = glob.glob(osp.join(run_dir, "log.txt")) + glob.glob(osp.join(run_dir, "log.txt-*"))
    return sorted(paths, key=os.path.getmtime, reverse=True)


def accuracy_in_log(path, eval_only=False):
    """The last accuracy printed after the end of training (or, for an evaluation
    log, after its result header); None if the log has none."""
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f]
    signals = EVAL_DONE if eval_only else TRAIN_DONE
    if not eval_only and not any(line in TRAIN_DONE for line in lines):
        signals = EVAL_DONE  # an --eval-only run
    accuracy, started = None, False
    for line in lines:
        if line in signals or line.startswith(signals):
            started = True
        match = ACCURACY.search(line)
        if started and match:
            accuracy = float(match.group(1))
    return accuracy


def run_accuracy(run_dir, eval_only=False):
    """(accuracy, log path) of a finished run; (None, None) otherwise."""
    for path in log_files(run_dir):
        accuracy = accuracy_in_log(path, eval_only)
        if accuracy is not None:
            return accuracy, path
    return None, None


def checkpoint_epoch(path):
    """The epochs held by the checkpoint at ``path``: read from the file name of an
    end-of-epoch checkpoint, from the file of a mid-epoch one."""
    match = EPOCH_CHECKPOINT.match(osp.basename(path))
    if match:
        return int(match.group(1))
    from dassl.utils import load_checkpoint

    return int(load_checkpoint(path)["epoch"])  # the epoch in progress: those before it are done


def completed_epochs(run_dir):
    """Epochs every registered model of the run in ``run_dir`` has checkpointed (0 if none):
    those of the checkpoint the run resumes from (dassl's run_checkpoint)."""
    names = sorted(osp.basename(osp.dirname(p)) for p in glob.glob(osp.join(run_dir, "*", "checkpoint")))
    if not names:
        return 0
    # Imported here: torch takes seconds, and most questions (logs, evaluations) need none.
    from dassl.utils import run_checkpoint

    file, _ = run_checkpoint(run_dir, names)
    return checkpoint_epoch(osp.join(run_dir, names[0], file))


def run_state(run_dir, evaluation=False):
    """The RunState of ``run_dir`` (a training run, or an evaluation with ``evaluation``)."""
    accuracy, log = run_accuracy(run_dir, evaluation)
    if accuracy is not None:
        return RunState(run_dir, FINISHED, log, evaluation)
    logs = log_files(run_dir)
    started = logs or glob.glob(osp.join(run_dir, "*", "checkpoint"))
    return RunState(run_dir, INTERRUPTED if started else EMPTY, logs[0] if logs else None, evaluation)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="output folder of a train.py run")
    parser.add_argument("--eval", action="store_true", help="the run is an --eval-only run")
    args = parser.parse_args(argv)
    try:
        print(run_state(args.run_dir, args.eval))
    except OSError as e:
        raise SystemExit(f"runs.state: error: {e}") from None
    except RuntimeError as e:  # a checkpoint it cannot read (or may not) names itself
        from dassl.utils import CheckpointFileError  # loaded already when a checkpoint was read

        if not isinstance(e, CheckpointFileError):
            raise
        raise SystemExit(f"runs.state: error: {e}") from None


if __name__ == "__main__":
    main()
