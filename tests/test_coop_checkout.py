"""Code written for upstream Dassl runs on our dassl/ and clip/ alone, and learns the
prompt upstream's code learned on upstream Dassl.

The test writes a CoOp-style checkout (a train.py, a CoOp trainer, a Caltech101 loader
and CoOp's config files, shaped as upstream's: same imports, same Dassl calls, same
order of random draws), links our dassl/ and clip/ into it and nothing else of this
repository, and trains it as tests/test_golden.py trains ours: the learned context
after each epoch, the loss lines and the accuracy must be those of upstream CoOp on
upstream Dassl (tests/data/golden/coop.json).
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import torch

from tests.helpers import REPO
from tools.record_upstream_golden import (
    BASELINES,
    CLIP_SHAPE,
    GOLDEN_DIR,
    read_run,
    run_options,
    train_args,
    write_inputs,
)

TRAIN_PY = '''
import argparse

import torch

from dassl.config import get_cfg_default
from dassl.engine import build_trainer
from dassl.utils import collect_env_info, set_random_seed, setup_logger

import datasets.caltech101  # noqa: F401
import trainers.coop  # noqa: F401


def extend_cfg(cfg):
    from yacs.config import CfgNode as CN

    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.TRAINER.COOP.CSC = False
    cfg.TRAINER.COOP.CTX_INIT = ""
    cfg.TRAINER.COOP.PREC = "fp16"
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"


def setup_cfg(args):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.merge_from_file(args.dataset_config_file)
    cfg.merge_from_file(args.config_file)
    cfg.DATASET.ROOT = args.root
    cfg.OUTPUT_DIR = args.output_dir
    cfg.SEED = args.seed
    cfg.TRAINER.NAME = args.trainer
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    return cfg


def main(args):
    cfg = setup_cfg(args)
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    print(cfg)
    print(collect_env_info())
    trainer = build_trainer(cfg)
    trainer.train()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for flag in ("--root", "--output-dir", "--trainer", "--config-file", "--dataset-config-file"):
        parser.add_argument(flag, type=str, default="")
    parser.add_argument("--seed", type=int, default=-1)
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER)
    main(parser.parse_args())
'''

CALTECH101_PY = '''
import os
import pickle
import random

from dassl.data.datasets import DATASET_REGISTRY, Datum, DatasetBase
from dassl.utils import listdir_nohidden, mkdir_if_missing

IGNORED = ["BACKGROUND_Google", "Faces_easy"]
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard",
              "Motorbikes": "motorbike"}


def split_folders(image_dir, p_trn=0.5, p_val=0.2):
    """Each class folder shuffled, then cut 50 / 20 / 30 (CoOp's DTD.read_and_split_data)."""
    categories = sorted(c for c in listdir_nohidden(image_dir) if c not in IGNORED)
    train, val, test = [], [], []
    for label, category in enumerate(categories):
        images = [os.path.join(image_dir, category, name)
                  for name in listdir_nohidden(os.path.join(image_dir, category))]
        random.shuffle(images)
        n_train, n_val = round(len(images) * p_trn), round(len(images) * p_val)
        name = NEW_CNAMES.get(category, category)
        cut = [images[:n_train], images[n_train:n_train + n_val], images[n_train + n_val:]]
        for items, part in zip((train, val, test), cut):
            items += [Datum(impath=path, label=label, classname=name) for path in part]
    return train, val, test


@DATASET_REGISTRY.register()
class Caltech101(DatasetBase):
    dataset_dir = "caltech-101"

    def __init__(self, cfg):
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, "101_ObjectCategories")
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        mkdir_if_missing(self.split_fewshot_dir)
        train, val, test = split_folders(self.image_dir)
        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots >= 1:
            path = os.path.join(self.split_fewshot_dir, f"shot_{num_shots}-seed_{cfg.SEED}.pkl")
            train = self.generate_fewshot_dataset(train, num_shots=num_shots)
            val = self.generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
            with open(path, "wb") as file:
                pickle.dump({"train": train, "val": val}, file)
        super().__init__(train_x=train, val=val, test=test)
'''

COOP_PY = '''
import torch
import torch.nn as nn
from torch.nn import functional as F

from clip import clip
from clip.simple_tokenizer import SimpleTokenizer
from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_checkpoint, load_pretrained_weights

_tokenizer = SimpleTokenizer()


# Upstream tries the file as TorchScript first; the tiny CLIP here is a state dict,
# read without running code (the project reads TorchScript in clip/clip.py alone).
def load_clip_to_cpu(cfg):
    # Upstream first tries the file as a TorchScript archive; the test's is a state dict.
    path = clip._download(clip._MODELS[cfg.MODEL.BACKBONE.NAME])
    return clip.build_model(torch.load(path, map_location="cpu", weights_only=True))


class TextEncoder(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype

    def forward(self, prompts, tokenized_prompts):
        x = (prompts + self.positional_embedding.type(self.dtype)).permute(1, 0, 2)
        x = self.ln_final(self.transformer(x).permute(1, 0, 2)).type(self.dtype)
        eot = x[torch.arange(x.shape[0]), tokenized_prompts.argmax(dim=-1)]
        return eot @ self.text_projection


class PromptLearner(nn.Module):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        n_ctx, dtype = cfg.TRAINER.COOP.N_CTX, clip_model.dtype
        ctx_vectors = torch.empty(n_ctx, clip_model.ln_final.weight.shape[0], dtype=dtype)
        nn.init.normal_(ctx_vectors, std=0.02)
        self.ctx = nn.Parameter(ctx_vectors)
        names = [name.replace("_", " ") for name in classnames]
        prompts = [" ".join(["X"] * n_ctx) + " " + name + "." for name in names]
        tokenized = torch.cat([clip.tokenize(p) for p in prompts])
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized).type(dtype)
        self.register_buffer("token_prefix", embedding[:, :1, :])
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])
        self.n_cls, self.tokenized_prompts = len(classnames), tokenized

    def forward(self):
        ctx = self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)


class CustomCLIP(nn.Module):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        self.prompt_learner = PromptLearner(cfg, classnames, clip_model)
        self.tokenized_prompts = self.prompt_learner.tokenized_prompts
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype

    def forward(self, image):
        image_features = self.image_encoder(image.type(self.dtype))
        text_features = self.text_encoder(self.prompt_learner(), self.tokenized_prompts)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * image_features @ text_features.t()


@TRAINER_REGISTRY.register()
class CoOp(TrainerX):
    def build_model(self):
        cfg = self.cfg
        clip_model = load_clip_to_cpu(cfg)
        if cfg.TRAINER.COOP.PREC in ("fp32", "amp"):
            clip_model.float()
        self.model = CustomCLIP(cfg, self.dm.dataset.classnames, clip_model)
        for name, param in self.model.named_parameters():
            if "prompt_learner" not in name:
                param.requires_grad_(False)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def load_model(self, directory, epoch=None):
        for name in self.get_model_names():
            checkpoint = load_checkpoint(f"{directory}/{name}/model.pth.tar-{epoch}")
            state_dict = {k: v for k, v in checkpoint["state_dict"].items()
                          if k not in ("token_prefix", "token_suffix")}
            self._models[name].load_state_dict(state_dict, strict=False)
'''

# Only the tiny CLIP file is given for the backbone name (no download), as in
# tools/record_upstream_golden.py; one thread, as the recording.
DRIVER = '''
import runpy, sys
import torch
clip_file, backbone = sys.argv[1:3]
sys.argv = ["train.py"] + sys.argv[3:]
torch.set_num_threads(1)
from clip import clip
clip._MODELS[backbone] = clip_file
clip._download = lambda url, root=None: url
runpy.run_path("train.py", run_name="__main__")
import dassl, datasets, trainers
ours = sorted({m.split(".")[0] for m in sys.modules} & {"runs", "tools", "tests", "train"})
print("packages:", dassl.__file__, clip.__file__, datasets.__file__, trainers.__file__, ours)
'''


def write_checkout(folder):
    files = {"train.py": TRAIN_PY, "trainers/__init__.py": "", "trainers/coop.py": COOP_PY,
             "datasets/__init__.py": "", "datasets/caltech101.py": CALTECH101_PY}
    for name, text in files.items():
        os.makedirs(osp.dirname(osp.join(folder, name)), exist_ok=True)
        with open(osp.join(folder, name), "w") as handle:
            handle.write(textwrap.dedent(text).lstrip())
    for config in ("configs/datasets/caltech101.yaml", "configs/trainers/CoOp/vit_b16_ep50.yaml"):
        os.makedirs(osp.dirname(osp.join(folder, config)), exist_ok=True)
        shutil.copy(osp.join(REPO, config), osp.join(folder, config))
    for package in ("dassl", "clip"):  # ours, and nothing else of this repository
        os.symlink(osp.join(REPO, package), osp.join(folder, package))


def test_upstream_shaped_coop_on_our_dassl_and_clip_learns_upstreams_prompt(tmp_path):
    checkout = str(tmp_path / "CoOp")
    write_checkout(checkout)
    root, clip_path = write_inputs(str(tmp_path))
    output_dir = str(tmp_path / "output")
    baseline = BASELINES["CoOp"]
    args = train_args(root, "configs/trainers/CoOp/vit_b16_ep50.yaml", output_dir, "CoOp")
    args += list(baseline.upstream_opts) + run_options(baseline, CLIP_SHAPE)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, clip_path, CLIP_SHAPE, *args],
                          cwd=checkout, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    packages = proc.stdout.split("packages: ")[-1].split()
    assert packages[0] == osp.join(checkout, "dassl", "__init__.py")
    assert packages[1] == osp.join(checkout, "clip", "clip.py")
    assert packages[2:4] == [osp.join(checkout, "datasets", "__init__.py"),
                             osp.join(checkout, "trainers", "__init__.py")]
    assert packages[4] == "[]"  # nothing of runs/, tools/, tests/ or train.py was imported

    with open(osp.join(GOLDEN_DIR, "coop.json")) as handle:
        golden = json.load(handle)
    ran = read_run(proc.stdout, output_dir, baseline.learned)
    for epoch, tensors in golden["tensors"].items():
        expected = torch.tensor(tensors["ctx"]["values"]).reshape(tensors["ctx"]["shape"])
        difference = (ran["tensors"][epoch]["ctx"] - expected).abs().max().item()
        assert difference <= 1e-5, f"ctx after epoch {epoch} is {difference:.3g} from upstream's"
    assert ran["loss_lines"] == golden["loss_lines"]
    assert ran["accuracy"] == round(golden["accuracy"], 1)
