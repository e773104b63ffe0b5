"""Helpers of the tests: running train.py as a user would, tiny CLIP checkpoints, trainers
built in-process as train.py builds them."""
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def run_cli(args, env_extra=None, entry="tools.train_toy", check=True, timeout=300):
    """Run a training entry point (``train.py``, or a module such as ``tools.train_toy``,
    run with ``-m``) in a subprocess; return the CompletedProcess."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    if env_extra:
        env.update(env_extra)
    command = [osp.join(REPO, entry)] if entry.endswith(".py") else ["-m", entry]
    proc = subprocess.run([sys.executable, *command] + [str(a) for a in args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {args}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def toy_args(root, output_dir, *extra, seed=1):
    return ["--root", root, "--seed", seed, "--trainer", "ToyLinear",
            "--dataset-config-file", "configs/toy/toy_colours.yaml",
            "--config-file", "configs/toy/toy_linear.yaml",
            "--output-dir", output_dir, *extra]


def parse_accuracy(text):
    """The last ``* accuracy: X%`` value printed by the evaluator."""
    values = [float(line.split(":")[1].strip().rstrip("%"))
              for line in text.splitlines() if line.startswith("* accuracy:")]
    assert values, f"no accuracy line in output:\n{text[-2000:]}"
    return values[-1]


def write_tiny_clip(path, shape="tiny-ViT", seed=0):
    """A randomly initialised CLIP of ``shape`` saved as a state-dict file (released precision)."""
    import torch

    from clip.shapes import random_state_dict

    torch.save(random_state_dict(shape, seed=seed), path)
    return str(path)


TINY_INPUT_SIZE = {"tiny-ViT": 32, "tiny-RN": 64}


def tiny_opts(checkpoint, shape="tiny-ViT"):
    size = TINY_INPUT_SIZE[shape]
    return ["MODEL.BACKBONE.NAME", checkpoint, "INPUT.SIZE", f"({size}, {size})",
            "DATALOADER.NUM_WORKERS", "0"]


CONFIGS = {
    "CoOp": "configs/trainers/CoOp/vit_b16_ep50.yaml",
    "CoCoOp": "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
    "KgCoOp": "configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml",
    "ZeroshotCLIP": "configs/trainers/CoOp/vit_b16.yaml",
    "ZeroshotCLIP2": "configs/trainers/CoOp/vit_b16.yaml",
    "E2MIM": "configs/trainers/E2MIM/vit_b16_ep50_ctxv1.yaml",
    "IVLP": "configs/trainers/IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    "MaPLe": "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
    "PromptSRC": "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
    "ProGrad": "configs/trainers/ProGrad/rn50_ep100.yaml",
}


def make_trainer(name, data, checkpoint, *opts, shape="tiny-ViT", output_dir="", seed=1):
    """A trainer built in-process exactly as train.py builds it (on a fake Caltech101)."""
    import train
    from dassl.engine import build_trainer
    from dassl.utils import set_random_seed

    args = train.build_parser().parse_args(
        ["--root", data, "--seed", str(seed), "--trainer", name,
         "--dataset-config-file", "configs/datasets/caltech101.yaml",
         "--config-file", CONFIGS[name], "--output-dir", output_dir or "/nonexistent",
         *tiny_opts(checkpoint, shape), *opts])
    cfg = train.setup_cfg(args)
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def step_terms_and_gradients(trainer, images, label):
    """One training step's loss terms and every registered model's gradients (no update)."""
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx = 0, 0
    terms = trainer.compute_loss(images, label)
    trainer.model_zero_grad()
    trainer.backward(terms)
    grads = {f"{name}.{key}": param.grad.clone()
             for name in trainer.get_model_names()
             for key, param in trainer._models[name].named_parameters() if param.grad is not None}
    return {name: value.detach() for name, value in terms.items()}, grads
