"""A toy dataset and a linear-head trainer, written against upstream Dassl's API only.

They exercise the engine end to end with no CLIP and no downloaded data: the
engine tests use them, and so can anyone checking an installation. Importing
this module registers ``ToyColours`` (dataset) and ``ToyLinear`` (trainer).

ToyColours: ``DATASET.ROOT/toy_colours/<class>/<n>.png``, 16x16 images whose
colour and pattern depend on the class, generated on first use from a fixed
seed with a private NumPy generator (the run's global RNGs are not touched).
"""
import os
import os.path as osp

import numpy as np
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum
from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import listdir_nohidden

TOY_CLASSES = ["red", "green", "blue", "yellow"]
TOY_COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200),
               "yellow": (210, 200, 40)}
IMAGES_PER_CLASS = 12  # 6 train, 2 val, 4 test


def generate_toy_colours(folder, seed=0):
    rng = np.random.RandomState(seed)
    for name in TOY_CLASSES:
        class_dir = osp.join(folder, name)
        os.makedirs(class_dir, exist_ok=True)
        for n in range(IMAGES_PER_CLASS):
            # A per-image colour shift makes neighbouring classes overlap, so
            # accuracy stays below 100% and comparisons between runs mean something.
            base = np.array(TOY_COLOURS[name], dtype=np.float64) + rng.normal(0, 70, size=3)
            pixels = base + rng.normal(0, 60, size=(16, 16, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                osp.join(class_dir, f"{n:03d}.png"))


@DATASET_REGISTRY.register()
class ToyColours(DatasetBase):
    dataset_dir = "toy_colours"

    def __init__(self, cfg):
        root = osp.abspath(osp.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = osp.join(root, self.dataset_dir)
        if not osp.isdir(self.dataset_dir):
            generate_toy_colours(self.dataset_dir)
        train, val, test = [], [], []
        for label, name in enumerate(TOY_CLASSES):
            files = listdir_nohidden(osp.join(self.dataset_dir, name), sort=True)
            items = [Datum(impath=osp.join(self.dataset_dir, name, f), label=label, classname=name)
                     for f in files]
            train += items[:6]
            val += items[6:8]
            test += items[8:]
        train = self.generate_fewshot_dataset(train, num_shots=cfg.DATASET.NUM_SHOTS)
        super().__init__(train_x=train, val=val, test=test)


@TRAINER_REGISTRY.register()
class ToyLinear(TrainerX):
    """Flatten the image, dropout, one linear layer."""

    def build_model(self):
        cfg = self.cfg
        height, width = cfg.INPUT.SIZE
        self.model = nn.Sequential(nn.Flatten(), nn.Dropout(0.2),
                                   nn.Linear(3 * height * width, self.num_classes))
        self.model.to(self.device)
        self.optim = build_optimizer(self.model, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def forward_backward(self, batch):
        input, label, _ = self.parse_batch_train(batch)
        output = self.model(input)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        loss_summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return loss_summary

    def after_epoch(self):
        super().after_epoch()
        # Test hook: simulate a kill right after epoch N's checkpoint.
        stop_after = os.environ.get("TOY_STOP_AFTER_EPOCH")
        if stop_after is not None and self.epoch + 1 == int(stop_after):
            os._exit(3)
