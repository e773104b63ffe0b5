"""Pretrain the tiny CLIP shipped with the repository on SynthWorld's image-caption pairs.

    python tools/pretrain_synthclip.py                     # writes clip/weights/SynthCLIP-RN.pt
    python tools/pretrain_synthclip.py --steps 200 --out /tmp/t.pt   # a quick try

Contrastive (CLIP) training on freshly rendered pairs of all 144 colour-shape
combinations (no hue shift: the downstream task is shifted, the pretraining
world is not). Seeded; a progress bar; ``--max-minutes`` stops early (and says
so). The checkpoint is an OpenAI-format state dict in released mixed precision
(the token embedding in fp16 too, to keep the file small), so ``clip.load`` and
``MODEL.BACKBONE.NAME SynthCLIP-RN`` read it like any release.
"""
import argparse
import math
import os
import os.path as osp
import sys
import time

import torch
from torch.nn import functional as F
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from clip.model import CLIP, convert_weights  # noqa: E402
from clip.shapes import MODEL_SHAPES  # noqa: E402
from datasets.synthworld_render import COLOURS, SHAPES, captions, render  # noqa: E402
from trainers.clip_prompting import tokenize_to_last_eot  # noqa: E402

SHAPE = "SynthCLIP-RN"
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast (fast only on CPUs with native bf16; slower here)")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop early after this")
    parser.add_argument("--out", default=osp.join("clip", "weights", f"{SHAPE}.pt"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = CLIP(*MODEL_SHAPES[SHAPE])
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.5 * args.lr * (1 + math.cos(math.pi * progress))

    names = list(COLOURS)
    start, done = time.time(), 0
    bar = tqdm(range(args.steps), desc="pretraining SynthCLIP", unit="step")
    for step in bar:
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"Stopping after {step} of {args.steps} steps (--max-minutes "
                  f"{args.max_minutes}); the cosine schedule was not finished")
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        colour_ids = torch.randint(len(names), (args.batch_size,), generator=gen)
        shape_ids = torch.randint(len(SHAPES), (args.batch_size,), generator=gen)
        images, attributes = render(colour_ids, shape_ids, gen, names)
        texts = captions(colour_ids, shape_ids, attributes, gen, names)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            image = F.normalize(model.encode_image(normalize_images(images)).float(), dim=-1)
            text = F.normalize(model.encode_text(tokenize_to_last_eot(texts)).float(), dim=-1)
        logits = model.logit_scale.exp() * image @ text.t()
        target = torch.arange(args.batch_size)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        done = step + 1
        if done % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")

    minutes = (time.time() - start) / 60
    task_colours = names[:10]
    accuracy = zero_shot_accuracy(model, task_colours)
    print(f"{done} steps in {minutes:.1f} min; zero-shot accuracy over the 100 task classes "
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
