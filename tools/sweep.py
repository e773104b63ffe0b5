"""Run a protocol's whole grid: on this machine's GPUs or CPU cores, or as Slurm job arrays.

    python -m tools.sweep base2new --methods CoOp E2MIM --datasets all --seeds 1 2 3 \\
        --root DATA --gpus 0,1,2,3
    python -m tools.sweep fewshot --methods CoOp --shots 1 2 4 8 16 --root DATA \\
        --executor slurm --partition gpu --time 240 --gpus-per-job 1
    python -m tools.sweep base2new --methods CoOp E2MIM --root DATA --status

The jobs, their train.py commands and output folders are those of the protocol
scripts (both read runs/grid.py). A task is a training run and the evaluations of
its model, run in order. Finished jobs are skipped and interrupted ones resume, so
calling the sweep again completes a grid; --status tells where it stands.

Executors: ``local`` runs a queue, one job per GPU of --gpus (CUDA_VISIBLE_DEVICES)
or --workers jobs on the CPU; ``slurm`` submits submitit job arrays. A pre-empted or
timed-out Slurm job is requeued: the running train.py gets SIGTERM, writes its
mid-epoch checkpoint and resumes from it in the requeued job. Each job's output
goes to sweep-log.txt in its run folder.
"""
import argparse
import json
import os
import os.path as osp
import queue
import shlex
import signal
import subprocess
import sys
import threading
from types import SimpleNamespace

from tabulate import tabulate

from runs.errors import GridError
from runs.grid import METHODS, PROTOCOLS, REPO, Settings, tasks
from runs.state import FINISHED, INTERRUPTED, run_accuracy

JOB_LOG = "sweep-log.txt"
JOB_RECORD = "sweep-job.json"
INTERRUPTED_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # train.py's exit on those signals


# ---------------------------------------------------------------- one task (local and Slurm alike)
def run_job(job, env=None, on_start=None, preexec_fn=None):
    """Run ``job`` unless it is finished; its output goes to its run folder. Returns the exit code."""
    if job.state().state == FINISHED:
        return 0
    os.makedirs(job.run_dir, exist_ok=True)
    argv = [sys.executable, *job.argv()]
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")  # the log follows the run
    with open(osp.join(job.run_dir, JOB_LOG), "a") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=preexec_fn)
        if on_start:
            on_start(proc)
        returncode = proc.wait()
    _write_record(job, {"returncode": returncode, "log": osp.join(job.run_dir, JOB_LOG),
                        "command": argv[1:]})
    return returncode


def run_task(task, **kwargs):
    """The task's jobs in order; stops at the first that fails. Returns (exit code, that job)."""
    for job in task:
        returncode = run_job(job, **kwargs)
        if returncode != 0:
            return returncode, job
    return 0, None


def _write_record(job, record):
    from dassl.utils.tools import atomic_write

    with atomic_write(osp.join(job.run_dir, JOB_RECORD), "w") as f:
        json.dump(record, f)


def _read_record(job):
    try:
        with open(osp.join(job.run_dir, JOB_RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def job_status(job):
    """(status, detail): finished, failed (with its log), interrupted (with its epoch) or pending."""
    state = job.state()
    if state.state == FINISHED:
        return "finished", ""
    record = _read_record(job)
    if record and record["returncode"] > 0 and record["returncode"] not in INTERRUPTED_CODES:
        return "failed", f"exit {record['returncode']}, see {record['log']}"
    if state.state == INTERRUPTED:
        return "interrupted", "evaluation" if job.evaluation else f"after epoch {state.epoch}"
    return "pending", ""


# ---------------------------------------------------------------- executors
def run_local(todo, gpus=None, workers=1):
    """A queue: each slot (a GPU, or a CPU worker) takes the next task when it is free."""
    slots = gpus or [None] * workers
    pending = queue.Queue()
    for task in todo:
        pending.put(task)
    failures, lock = [], threading.Lock()

    def worker(gpu):
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        else:  # CPU jobs side by side share the cores instead of each taking all of them
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // len(slots))))
        where = "" if gpu is None else f" (GPU {gpu})"
        while True:
            try:
                task = pending.get_nowait()
            except queue.Empty:
                return
            print(f"[sweep] start {task[0].name}{where}", flush=True)
            returncode, job = run_task(task, env=env)
            with lock:
                if returncode:
                    failures.append(job)
                    print(f"[sweep] FAILED {job.name} (exit {returncode}); see "
                          f"{osp.join(job.run_dir, JOB_LOG)}", flush=True)
                else:
                    print(f"[sweep] done {task[-1].name}", flush=True)

    threads = [threading.Thread(target=worker, args=(gpu,), daemon=True) for gpu in slots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _preemption_signal():
    """The signal submitit turns into checkpoint-and-requeue (SUBMITIT_PREEMPT_SIGNAL, USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def _ignore_preemption_signal():
    # Slurm signals every process of the job: only the submitit process acts on it.
    signal.signal(_preemption_signal(), signal.SIG_IGN)


class TaskRunner:
    """One task as a submitit job. On pre-emption or timeout submitit calls ``checkpoint``:
    the running train.py gets SIGTERM, writes its mid-epoch checkpoint and exits, and the
    same task is requeued; there it skips what finished and resumes the rest."""

    def __init__(self, task):
        self.task = task
        self._proc = None

    def __call__(self):
        returncode, job = run_task(self.task, on_start=self._started,
                                   preexec_fn=_ignore_preemption_signal)
        if returncode:
            raise RuntimeError(f"{job.name} failed (exit {returncode}); see "
                               f"{osp.join(job.run_dir, JOB_LOG)}")
        return [job.name for job in self.task]

    def _started(self, proc):
        self._proc = proc

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:  # (Popen.wait could deadlock here: this runs in a signal handler during it)
                os.waitpid(self._proc.pid, 0)
            except ChildProcessError:
                pass
        return DelayedSubmission(TaskRunner(self.task))

    def __getstate__(self):
        return {"task": self.task, "_proc": None}


def run_submitit(todo, args, cluster):
    """Job arrays through submitit (``cluster="local"``: its LocalExecutor, the same path)."""
    import submitit

    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).rstrip(":")
    executor = submitit.AutoExecutor(folder=osp.join(args.settings.out("sweep", "submitit"), "%j"),
                                     cluster=cluster)
    executor.update_parameters(
        name=f"sweep-{args.protocol}", timeout_min=args.time, gpus_per_node=args.gpus_per_job,
        cpus_per_task=args.cpus_per_job, mem_gb=args.mem, slurm_partition=args.partition,
        slurm_array_parallelism=args.array_parallelism)
    with executor.batch():
        submitted = [(executor.submit(TaskRunner(task)), task) for task in todo]
    print(f"[sweep] submitted {len(submitted)} tasks: "
          f"{', '.join(sorted({job.job_id.split('_')[0] for job, _ in submitted}))}", flush=True)
    for job, task in submitted:
        try:
            job.result()
        except Exception as e:  # the status table names the failed job and its log
            print(f"[sweep] task {task[0].name} stopped: {str(e).strip().splitlines()[-1]}", flush=True)


# ---------------------------------------------------------------- reports
def print_status(grid):
    rows = [[job.name, *job_status(job)] for task in grid for job in task]
    print(tabulate(rows, headers=["job", "status", ""], tablefmt="simple"))
    counts = {}
    for _, status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


def print_results(protocol, grid, settings):
    """The protocol's results table: parse_test_res.py's for base-to-new, else accuracy per
    experiment (mean +- std over seeds)."""
    from parse_test_res import print_base2new, spread

    if protocol == "base2new":
        root = settings.out("base2new")
        if osp.isdir(root):
            print_base2new(root, SimpleNamespace(ci95=False, format="table", compare=None))
        return
    experiments = {}
    for task in grid:
        for job in task:
            if job.evaluation or protocol == "fewshot":
                accuracy, _ = run_accuracy(job.run_dir, job.evaluation)
                experiments.setdefault(osp.dirname(job.run_dir), []).append(accuracy)
    rows = []
    for folder, values in experiments.items():
        done = [v for v in values if v is not None]
        mean = f"{sum(done) / len(done):.2f} +- {spread(done):.2f}" if done else "-"
        rows.append([osp.relpath(folder, settings.out()), f"{len(done)}/{len(values)}", mean])
    print(tabulate(rows, headers=["experiment", "runs", "accuracy"], tablefmt="simple"))


# ---------------------------------------------------------------- command line
def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("protocol", choices=PROTOCOLS)
    parser.add_argument("--methods", nargs="+", help="methods of runs/grid.py (default: all trained "
                        "methods; zeroshot: ZeroshotCLIP); NAME@CFG runs NAME with config CFG")
    parser.add_argument("--datasets", nargs="+", help="dataset names, or all (the default); xd: the "
                        "evaluation datasets")
    parser.add_argument("--seeds", nargs="+", default=["1", "2", "3"])
    parser.add_argument("--shots", nargs="+", type=int, help="fewshot: 1 2 4 8 16 (default); "
                        "base2new and xd: 16")
    parser.add_argument("--root", default=os.environ.get("DATA"),
                        help="folder holding the datasets (default: $DATA)")
    parser.add_argument("--output", default="output", help="where runs go (relative: under the "
                        "repository, as the scripts' OUTPUT)")
    parser.add_argument("--cfg", help="one config name for every method (as the scripts' CFG)")
    parser.add_argument("--xd-source", default="imagenet", help="xd: the training dataset")
    parser.add_argument("--opts", nargs="+", default=[],
                        help="KEY VALUE overrides appended to every train.py call (EXTRA_OPTS)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    what.add_argument("--status", action="store_true", help="print the state of every job")
    parser.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                        help="submitit-local: the slurm path through submitit's local executor")
    local = parser.add_argument_group("local executor")
    local.add_argument("--gpus", help="e.g. 0,1,2,3: one job per GPU at a time")
    local.add_argument("--workers", type=int, default=1, help="CPU jobs at a time (without --gpus)")
    slurm = parser.add_argument_group("slurm executor")
    slurm.add_argument("--partition")
    slurm.add_argument("--time", type=int, default=240, help="minutes per job")
    slurm.add_argument("--gpus-per-job", type=int, default=1)
    slurm.add_argument("--cpus-per-job", type=int, default=8)
    slurm.add_argument("--mem", type=int, default=32, help="GB per job")
    slurm.add_argument("--array-parallelism", type=int, default=64, help="jobs running at once")
    return parser


def expand(args):
    if not args.root:
        raise GridError("--root (or DATA) must name the folder that holds the datasets")
    if len(args.opts) % 2:
        raise GridError(f"--opts must be KEY VALUE pairs; got an odd list: {args.opts}")
    args.settings = Settings(args.root, args.output, args.cfg, None, tuple(args.opts), args.xd_source)
    methods = args.methods or (["ZeroshotCLIP"] if args.protocol == "zeroshot"
                               else [name for name, m in METHODS.items() if not m.zero_shot])
    datasets = None if not args.datasets or args.datasets == ["all"] else args.datasets
    return tasks(args.protocol, methods, datasets, args.seeds, args.shots, args.settings)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        grid = expand(args)
        if args.dry_run:
            for task in grid:
                for job in task:
                    print(shlex.join(["python", *job.argv(planned=True)]))
            return 0
    except GridError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 2
    if not args.status:
        todo = [task for task in grid if any(job.state().state != FINISHED for job in task)]
        print(f"[sweep] {args.protocol}: {len(grid)} tasks, {len(grid) - len(todo)} finished, "
              f"{len(todo)} to run", flush=True)
        if todo and args.executor == "local":
            gpus = [g for g in args.gpus.split(",") if g] if args.gpus else None
            run_local(todo, gpus, args.workers)
        elif todo:
            run_submitit(todo, args, "local" if args.executor == "submitit-local" else "slurm")
    print_status(grid)
    print()
    print_results(args.protocol, grid, args.settings)
    failed = [job for task in grid for job in task if job_status(job)[0] == "failed"]
    for job in failed:
        print(f"sweep: failed: {job.name}: {job_status(job)[1]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
