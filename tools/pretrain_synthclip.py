"""Pretrain the tiny CLIPs shipped with the repository on SynthWorld's image-caption pairs.

    python -m tools.pretrain_synthclip                     # writes clip/weights/SynthCLIP-ViT.pt
    python -m tools.pretrain_synthclip --model SynthCLIP-RN          # clip/weights/SynthCLIP-RN.pt
    python -m tools.pretrain_synthclip --steps 200 --out /tmp/t.pt   # a quick try

Contrastive (CLIP) training on freshly rendered pairs of all 144 colour-shape
combinations (no hue shift: the downstream task is shifted, the pretraining
world is not). Seeded; a progress bar; ``--max-minutes`` stops early (and says
so). The checkpoint is an OpenAI-format state dict in released mixed precision
(the token embedding in fp16 too, to keep the file small), so ``clip.load`` and
``MODEL.BACKBONE.NAME`` (the shipped name, or the file's path) read it like any release.

Each model has its recipe (RECIPES; command-line options override it). The ViT's
logit scale ends at CLIP's clamp of 100, as the OpenAI releases' does: learned from
CLIP's initial 1/0.07 it only reaches about 22 in this world (SynthCLIP-RN); held at
100 from the first step, the ViT learned slowly (27% zero-shot after 1,000 of 1,500
steps); so the scale follows a schedule, from 1/0.07 up to 100 over the first half
of the steps, and the second half trains the features at the scale they are used at.
"""
import argparse
import math
import os
import os.path as osp
import time

import torch
from torch.nn import functional as F
from tqdm import tqdm

from clip.clip import model_file, read_state_dict
from clip.model import CLIP, build_model, convert_weights
from clip.shapes import MODEL_SHAPES
from datasets.synthworld_render import COLOURS, SHAPES, captions, render
from trainers.clip_prompting import tokenize_to_last_eot

# steps, peak LR, warm-up steps, and the logit scale: "learned" from CLIP's initial
# value (clamped at 100), or "ramp": not trained, raised log-linearly from CLIP's initial
# value to the clamp of 100 over the first half of the steps, then held there.
RECIPES = {
    "SynthCLIP-RN": {"steps": 2500, "lr": 1e-3, "warmup": 200, "logit_scale": "learned"},
    "SynthCLIP-ViT": {"steps": 4000, "lr": 2e-3, "warmup": 50, "logit_scale": "clamp",
                      "teacher": "SynthCLIP-RN"},
}
INITIAL_LOGIT_SCALE = 1 / 0.07  # CLIP's
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp
PIXEL_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
PIXEL_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def normalize_images(images):
    return (images - PIXEL_MEAN) / PIXEL_STD


@torch.no_grad()
def zero_shot_accuracy(model, colour_names, n_per_class=20, seed=12345, hue_shift=0.0):
    """Accuracy over all colour x shape classes of ``colour_names``, on fresh images."""
    model.eval()
    names = list(COLOURS)
    colour_ids = torch.tensor([names.index(c) for c in colour_names])
    classes = [(c, s) for c in colour_ids.tolist() for s in range(len(SHAPES))]
    prompts = [f"a photo of a {names[c]} {SHAPES[s]}." for c, s in classes]
    text = F.normalize(model.encode_text(tokenize_to_last_eot(prompts)).float(), dim=-1)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(classes)).repeat_interleave(n_per_class)
    c_ids = torch.tensor([c for c, _ in classes]).repeat_interleave(n_per_class)
    s_ids = torch.tensor([s for _, s in classes]).repeat_interleave(n_per_class)
    correct = 0
    for start in range(0, len(labels), 500):
        sl = slice(start, start + 500)
        images, _ = render(c_ids[sl], s_ids[sl], gen, names, hue_shift=hue_shift)
        image = F.normalize(model.encode_image(normalize_images(images)).float(), dim=-1)
        correct += ((image @ text.t()).argmax(1) == labels[sl]).sum().item()
    model.train()
    return 100.0 * correct / len(labels)


def load_teacher(model, name):
    """The shipped CLIP ``name``, frozen; its text tower (embeddings, transformer, final
    norm, projection) is copied into ``model`` and frozen there too, so that only the
    image tower trains, into the teacher's joint space."""
    teacher = build_model(read_state_dict(model_file(name))).float().eval()
    teacher.requires_grad_(False)
    text_tower = {key: value for key, value in teacher.state_dict().items()
                  if not key.startswith("visual.") and key != "logit_scale"}
    missing = set(text_tower) - set(model.state_dict())
    if missing or any(model.state_dict()[k].shape != v.shape for k, v in text_tower.items()):
        raise SystemExit(f"pretrain_synthclip.py: error: {name}'s text tower does not fit the "
                         "shape being trained (clip/shapes.py): its text width, layers and "
                         "embedding size must be the same")
    model.load_state_dict(text_tower, strict=False)
    for key, param in model.named_parameters():
        if not key.startswith("visual.") and key != "logit_scale":
            param.requires_grad_(False)
    return teacher


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=list(RECIPES), default="SynthCLIP-ViT",
                        help="the shape (clip/shapes.py) and recipe (RECIPES) to pretrain")
    parser.add_argument("--steps", type=int, help="default: the model's recipe")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, help="default: the model's recipe")
    parser.add_argument("--warmup", type=int, help="default: the model's recipe")
    parser.add_argument("--logit-scale", choices=["learned", "ramp", "clamp"],
                        help="learned from CLIP's initial value, raised to the clamp of 100 "
                             "over the first half of the steps, or at the clamp of 100 "
                             "throughout (default: the model's recipe)")
    parser.add_argument("--teacher", help="a shipped CLIP whose text tower is copied and "
                        "frozen, and whose image features the image tower learns to match "
                        "(default: the model's recipe)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast (fast only on CPUs with native bf16; slower here)")
    parser.add_argument("--eval-per-class", type=int, default=20,
                        help="fresh images per class of the final zero-shot accuracy")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="print the zero-shot accuracy (5 fresh images a class) every N steps")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop early after this")
    parser.add_argument("--out", help="default: clip/weights/<model>.pt")
    args = parser.parse_args(argv)
    for key, value in RECIPES[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out = args.out or osp.join("clip", "weights", f"{args.model}.pt")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = CLIP(*MODEL_SHAPES[args.model])
    teacher = load_teacher(model, args.teacher) if args.teacher else None
    if args.logit_scale != "learned":
        model.logit_scale.requires_grad_(False)
    if args.logit_scale == "clamp":
        model.logit_scale.fill_(math.log(MAX_LOGIT_SCALE))
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in trained if not (p.dim() >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.5 * args.lr * (1 + math.cos(math.pi * progress))

    def logit_scale_at(step):  # log of the scale; exactly log(100) from the midpoint on
        remaining = max(0.0, 1 - step / (args.steps / 2))
        high, low = math.log(MAX_LOGIT_SCALE), math.log(INITIAL_LOGIT_SCALE)
        return high - (high - low) * remaining

    names = list(COLOURS)
    start, done = time.time(), 0
    bar = tqdm(range(args.steps), desc=f"pretraining {args.model}", unit="step")
    for step in bar:
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"Stopping after {step} of {args.steps} steps (--max-minutes "
                  f"{args.max_minutes}); the cosine schedule was not finished")
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        if args.logit_scale == "ramp":
            model.logit_scale.fill_(logit_scale_at(step))
        colour_ids = torch.randint(len(names), (args.batch_size,), generator=gen)
        shape_ids = torch.randint(len(SHAPES), (args.batch_size,), generator=gen)
        images, attributes = render(colour_ids, shape_ids, gen, names)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            image = F.normalize(model.encode_image(normalize_images(images)).float(), dim=-1)
            if teacher is None:
                texts = captions(colour_ids, shape_ids, attributes, gen, names)
                text = F.normalize(model.encode_text(tokenize_to_last_eot(texts)).float(), dim=-1)
        if teacher is None:
            logits = model.logit_scale.exp() * image @ text.t()
            target = torch.arange(args.batch_size)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        else:  # the text tower is the teacher's, frozen: the image tower learns the
            # teacher's image features (1 - cosine), a dense target where a contrastive
            # loss at the clamped scale of 100 learned slowly
            with torch.no_grad():
                target_features = F.normalize(
                    teacher.encode_image(normalize_images(images)).float(), dim=-1)
            loss = (1 - (image * target_features).sum(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        done = step + 1
        if done % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
        if args.eval_every and done % args.eval_every == 0:
            # Its own generator, and no dropout or batch statistics change: training is unaltered.
            bar.write(f"step {done}: loss {loss.item():.3f}, zero-shot "
                      f"{zero_shot_accuracy(model, names[:10], n_per_class=5):.1f}%")

    minutes = (time.time() - start) / 60
    task_colours = names[:10]
    accuracy = zero_shot_accuracy(model, task_colours, n_per_class=args.eval_per_class)
    print(f"{args.model}: {done} steps in {minutes:.1f} min; logit scale (exp) "
          f"{model.logit_scale.exp().item():.4f}; zero-shot accuracy over the 100 task classes "
          f"(pretraining distribution, fresh images): {accuracy:.1f}%")
    convert_weights(model)
    state_dict = model.state_dict()
    state_dict["token_embedding.weight"] = state_dict["token_embedding.weight"].half()
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    partial = args.out + ".partial"  # written whole, then renamed: never a half file
    torch.save(state_dict, partial)
    os.replace(partial, args.out)
    print(f"Saved {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
