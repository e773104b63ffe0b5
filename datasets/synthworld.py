"""SynthWorld: an embedded benchmark of coloured shapes, generated on first use.

Classes are "<colour> <shape>" (10 colours x 10 shapes by default), ordered
colour by colour, so CoOp's base/new split (first half / second half of the
labels) puts the first five colours in base and the other five, whose colour
words prompt tuning never sees, in new. The task's images are hue-rotated
(``HUE_SHIFT`` degrees) against the world CLIP was pretrained on: a domain shift
like the one between CLIP's web data and a benchmark; without it nothing would
beat zero-shot CLIP.

The images and ``split_zhou_SynthWorld.json`` are written under
DATASET.ROOT/synthworld/ in the benchmarks' format, so the same split, few-shot
and base/new code runs as for the real datasets. ``world.json`` records the
generation settings; a folder generated with other settings is refused.
"""
import json
import os
import os.path as osp
import shutil
import tempfile

import numpy as np
import torch
from PIL import Image

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .benchmark import Benchmark, dataset_root, save_split
from .synthworld_render import COLOURS, SHAPES, render

GENERATOR_VERSION = 1


def world_settings(cfg):
    options = cfg.DATASET.SYNTHWORLD
    return {"version": GENERATOR_VERSION, "seed": options.SEED, "colours": options.N_COLOURS,
            "shapes": options.N_SHAPES, "train": options.TRAIN_PER_CLASS,
            "val": options.VAL_PER_CLASS, "test": options.TEST_PER_CLASS,
            "hue_shift": options.HUE_SHIFT, "size": options.IMAGE_SIZE}


def class_list(settings):
    """[(label, colour index, shape index, class name)], colour-major."""
    colours, shapes = list(COLOURS)[:settings["colours"]], SHAPES[:settings["shapes"]]
    return [(c * len(shapes) + s, c, s, f"{colours[c]} {shapes[s]}")
            for c in range(len(colours)) for s in range(len(shapes))]


def generate_world(folder, settings):
    """Write images/<class>/<split>_<i>.png, the split file and world.json into ``folder``
    (built in a temporary folder beside it and renamed, so a crash leaves nothing)."""
    parent = osp.dirname(osp.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".synthworld-", dir=parent)
    try:
        gen = torch.Generator().manual_seed(settings["seed"])
        names = list(COLOURS)
        splits = {}
        for split in ("train", "val", "test"):
            items = []
            for label, colour, shape, classname in class_list(settings):
                n = settings[split]
                images, _ = render(torch.full((n,), colour), torch.full((n,), shape), gen, names,
                                   size=settings["size"], hue_shift=settings["hue_shift"])
                pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
                class_dir = osp.join(staging, "images", classname.replace(" ", "_"))
                os.makedirs(class_dir, exist_ok=True)
                for i, array in enumerate(pixels):
                    path = osp.join(class_dir, f"{split}_{i:03d}.png")
                    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG")
                    items.append(Datum(impath=path, label=label, classname=classname))
            splits[split] = items
        image_dir = osp.join(staging, "images")
        save_split(splits["train"], splits["val"], splits["test"],
                   osp.join(staging, "split_zhou_SynthWorld.json"), image_dir)
        with open(osp.join(staging, "world.json"), "w") as f:
            json.dump(settings, f, indent=2)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@DATASET_REGISTRY.register()
class SynthWorld(Benchmark):
    dataset_dir = "synthworld"
    image_folder = "images"
    section = "SynthWorld"

    def __init__(self, cfg):
        folder = osp.join(dataset_root(cfg), self.dataset_dir)
        settings = world_settings(cfg)
        if not osp.exists(osp.join(folder, "world.json")):
            if osp.exists(folder) and os.listdir(folder):
                raise FileNotFoundError(
                    f"{folder} exists but holds no world.json: not a SynthWorld folder made by "
                    "this code; move it away, and it is generated again on the next run")
            print(f"Generating SynthWorld in {folder} (once) ...")
            generate_world(folder, settings)
        with open(osp.join(folder, "world.json")) as f:
            on_disk = json.load(f)
        if on_disk != settings:
            changed = {k: (on_disk.get(k), v) for k, v in settings.items() if on_disk.get(k) != v}
            raise ValueError(
                f"{folder} was generated with other settings (on disk vs config: {changed}); "
                "delete that folder to generate it again, or use another --root")
        super().__init__(cfg)

    def create_splits(self):  # the generator always writes the split file
        raise FileNotFoundError(f"{self.split_path} is missing; delete {self.dataset_dir} to "
                                "generate SynthWorld again")
