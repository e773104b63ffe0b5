"""Several processes (torchrun, gloo on the CPU) train as one process with the same
global batch: the same loss at every step, the same learned weights, the same files,
written by rank 0 alone. For every kind of method: frozen image features (CoOp, E2MIM,
ProGrad in fp32) and image sides that learn (IVLP's and PromptSRC's vision prompts,
MaPLe's couplings), whose pixels each rank encodes with the gradient."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.helpers import CONFIGS, REPO, tiny_opts

# A deterministic transform: the ranks draw their own augmentations (as any data-parallel
# run does), so only then can N processes and one see the very same images.
OPTS = ["INPUT.TRANSFORMS", "['normalize']", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "OPTIM.MAX_EPOCH", "1", "TRAIN.PRINT_FREQ", "1", "DATALOADER.TEST.BATCH_SIZE", "5"]
# Deep prompts in both layers of the tiny ViT; a learning rate that moves them in one epoch
# (no warm-up), so that a lost gradient shows (MaPLe's couplings once ended 3e-3 away).
MOVING = ["OPTIM.LR", "0.05", "OPTIM.WARMUP_EPOCH", "0"]
METHOD_OPTS = {
    "CoOp": [], "E2MIM": [], "ProGrad": MOVING,
    "IVLP": ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2", *MOVING],
    "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "2", *MOVING],
    "PromptSRC": ["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                  "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2", *MOVING],
}
# The deep prompts pass through fp16 in every precision, as upstream's (deep_prompts.
# as_upstream_fp16), forward and backward. The processes sum in another order than one
# process (features of 2 images or classes at a time, the all-reduce), about 1e-7 in fp32;
# where that straddles a rounding boundary, a prompt or its gradient lands one fp16 ulp
# (2^-10 relative) away, and the step with it. With steps of the size of the weights
# themselves (LR 0.05: the prompts move by their own size in an epoch), n steps end at most
# about n * 2^-10 * max|w| apart (measured: 2.7e-4 at max|w| 0.45 after 3 steps, 5.9e-4 of
# it). Without the fp16 cast the processes end within 2.1e-7 of one process; a lost
# image-side gradient (vision prompts that do not move) fails the per-step loss check below.
FP16_PROMPTS = ("IVLP", "MaPLe", "PromptSRC")


def fp16_prompt_tolerance(steps, reference):
    return max(1e-5, steps * 2 ** -10 * reference.float().abs().max().item())


MODELS = {"CoOp": ["prompt_learner"], "E2MIM": ["prompt_learner", "critic"],
          "ProGrad": ["prompt_learner"], "IVLP": ["VLPromptLearner"],
          "MaPLe": ["MultiModalPromptLearner"], "PromptSRC": ["VLPromptLearner"]}


def launch(name, data, checkpoint, output_dir, processes):
    """``python train.py`` (one process) or ``torchrun --nproc_per_node N train.py``, started."""
    launcher = ([] if processes == 1 else
                ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)])
    command = [sys.executable, *launcher, osp.join(REPO, "train.py"), "--root", data,
               "--seed", "1", "--trainer", name,
               "--dataset-config-file", "configs/datasets/caltech101.yaml",
               "--config-file", CONFIGS[name], "--output-dir", str(output_dir),
               *tiny_opts(checkpoint), *OPTS, *METHOD_OPTS[name]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def runs(tiny_clip, fake_caltech, tmp_path_factory):
    """{(method, processes): (output folder, stdout)}: all runs at once (they are mostly
    process start-up)."""
    root = tmp_path_factory.mktemp("distributed")
    started = {(name, n): (root / f"{name}-{n}", launch(name, fake_caltech, tiny_clip["tiny-ViT"],
                                                         root / f"{name}-{n}", n))
               for name in METHOD_OPTS for n in (1, 2)}
    finished = {}
    for key, (folder, proc) in started.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{key}: {stdout[-3000:]}\n{stderr[-3000:]}"
        finished[key] = (folder, stdout)
    return finished


def step_losses(output_dir):
    """Each step's loss, from the epoch's running mean that tensorboard records per step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(osp.join(str(output_dir), "tensorboard"))
    events.Reload()
    means = [event.value for event in events.Scalars("train/loss")]
    return [k * mean - (k - 1) * previous
            for k, (mean, previous) in enumerate(zip(means, [0.0] + means), start=1)]


def files(output_dir):
    """{folder: file count} under ``output_dir`` (names of logs and events carry times)."""
    return {osp.relpath(folder, str(output_dir)): len(names)
            for folder, _, names in os.walk(str(output_dir))}


def learned_weights(output_dir, names):
    weights = {}
    for name in names:
        state = torch.load(osp.join(str(output_dir), name, "model.pth.tar-1"), weights_only=True)
        weights.update({f"{name}.{k}": v for k, v in state["state_dict"].items()
                        if not k.startswith("token_")})
    return weights


@pytest.mark.parametrize("name", list(METHOD_OPTS))
def test_two_processes_train_as_one_with_the_same_global_batch(runs, name):
    models = MODELS[name]
    (one, single), (two, double) = runs[name, 1], runs[name, 2]
    assert "Training with 2 processes" in double

    expected, losses = step_losses(one), step_losses(two)
    assert len(expected) >= 2 and len(losses) == len(expected)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected), rtol=1e-5, atol=1e-5)

    weights, reference = learned_weights(two, models), learned_weights(one, models)
    assert weights.keys() == reference.keys()  # upstream's keys, whatever the process count
    for key in weights:
        tolerance = (fp16_prompt_tolerance(len(expected), reference[key]) if name in FP16_PROMPTS
                     else 1e-5)
        torch.testing.assert_close(weights[key], reference[key], rtol=0, atol=tolerance,
                                   equal_nan=True)  # (an estimator buffer unset: NaN)
    optimizer = torch.load(osp.join(str(two), models[0], "model.pth.tar-1"),
                           weights_only=True)["optimizer"]
    assert optimizer["state"]  # it stepped: the weights moved

    # Rank 0 alone wrote: one log, one event file, one checkpoint per model.
    assert files(two) == files(one)
    assert files(two)["tensorboard"] == 1
    accuracy = [line for line in single.splitlines() if line.startswith("* accuracy")]
    assert accuracy and accuracy == [line for line in double.splitlines()
                                     if line.startswith("* accuracy")]
