"""Pretrain the tiny CLIPs shipped with the repository on SynthWorld's image-caption pairs.

    python -m tools.pretrain_synthclip                     # writes clip/weights/SynthCLIP-ViT.pt
    python -m tools.pretrain_synthclip --model SynthCLIP-RN          # clip/weights/SynthCLIP-RN.pt
    python -m tools.pretrain_synthclip --model SynthCLIP-Cone        # clip/weights/SynthCLIP-Cone.pt
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

SynthCLIP-Cone, the world CLIP of the demo, is not trained but constructed from
SynthCLIP-ViT (``cone_construction``, seconds): the releases' geometry at their
logit scale of 100. Both towers' features get a constant part, one direction for
the images and one for the texts (two narrow cones with a modality gap between
them), and the learned part is shrunk so that 100 x cosine equals
``effective_scale`` x the old cosine plus a constant: the logits of a model
calibrated at its own temperature, stored at the releases' scale, with matched
image-text cosines near the releases' 0.3 instead of 0.7.
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
    # Constructed, not trained (cone_construction): SynthCLIP-ViT at an effective
    # temperature of 6 (the task's zero-shot cross-entropy within 1-2.5 nats on base and
    # new classes; docs/SYNTHWORLD.md), matched image-text cosines of 0.30 as the releases'.
    # The text stream is left as it is: scaled by 0.45 (prompts moving 5x as far per step,
    # for the demo's fifth of the published schedules) it lifted KgCoOp's base accuracy by
    # 3 points but MaPLe collapsed (40.9 H).
    "SynthCLIP-Cone": {"construct": "SynthCLIP-ViT", "effective_scale": 6.0,
                       "matched_cosine": 0.30, "text_stream_scale": 1.0},
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


def scale_text_stream(state_dict, factor):
    """The text tower with its residual stream ``factor`` times as large: the token and
    position embeddings and every block's output projections scaled. Each LayerNorm
    removes the scale again, so the tower computes the same function (up to LayerNorm's
    epsilon), but a prompt vector drawn from the token embeddings is ``factor`` times as
    long and its gradient ``1 / factor`` times as large: one optimiser step moves it
    ``1 / factor^2`` times as far, relative to its length."""
    scaled = dict(state_dict)
    for key, value in state_dict.items():
        if key in ("token_embedding.weight", "positional_embedding") or (
                key.startswith("transformer.") and (".attn.out_proj." in key or ".mlp.c_proj." in key)):
            scaled[key] = (value.float() * factor).to(value.dtype)
    return scaled


def cone_construction(state_dict, effective_scale, matched_cosine, text_stream_scale=1.0, seed=1,
                      n_pairs=1000):
    """A state dict of the same CLIP at logit scale 100 whose logits are
    ``effective_scale`` x its cosines plus a constant, in the releases' cone geometry.

    Each tower's features are ``x @ P`` with ``x = n * g + b`` the output of its final
    LayerNorm, where ``n`` sums to zero over the width. One channel ``j`` of that norm is
    made a constant 1 (gain 0, bias 1); since ``n_j = -sum of the other n_i``, the rows of
    ``P`` are rewritten so that the old features come out exactly as before, and ``P``'s
    row ``j`` then carries any constant. The old columns are scaled by ``a / rho`` (``rho``:
    the tower's mean feature norm on fresh pretraining pairs; ``a^2 = effective_scale /
    100``), and two columns are appended that read only channel ``j``: the cone
    directions, ``p`` for images and ``q`` for texts, ``|p|^2 = |q|^2 = 1 - a^2``, ``p.q``
    set so that a matched pair's cosine is ``matched_cosine``. A feature's norm is 1 up
    to the spread of its learned part's norm, and ``100 cos = 100 a^2 cos_old + 100 p.q``
    up to that spread: the softmax of the old model at temperature ``effective_scale``.
    With ``text_stream_scale`` the text tower's residual stream is scaled first
    (``scale_text_stream``).
    """
    if text_stream_scale != 1.0:
        state_dict = scale_text_stream(state_dict, text_stream_scale)
    model = build_model({k: v.clone() for k, v in state_dict.items()}).float().eval()
    names = list(COLOURS)
    gen = torch.Generator().manual_seed(seed)
    colour_ids = torch.randint(len(names), (n_pairs,), generator=gen)
    shape_ids = torch.randint(len(SHAPES), (n_pairs,), generator=gen)
    with torch.no_grad():
        images, _ = render(colour_ids, shape_ids, gen, names)
        image = model.encode_image(normalize_images(images)).float()
        prompts = [f"a photo of a {names[c]} {SHAPES[s]}." for c, s in
                   zip(colour_ids.tolist(), shape_ids.tolist())]
        text = model.encode_text(tokenize_to_last_eot(prompts)).float()
    old_matched = (F.normalize(image, dim=-1) * F.normalize(text, dim=-1)).sum(-1).mean().item()
    a2 = effective_scale / MAX_LOGIT_SCALE
    radius2 = 1 - a2
    gap_cosine = (matched_cosine - a2 * old_matched) / radius2  # cos of the angle p, q
    if not -1 < gap_cosine < 1:
        raise SystemExit(f"pretrain_synthclip.py: error: matched cosine {matched_cosine} is out "
                         f"of reach at effective scale {effective_scale}")
    cones = {"image": torch.tensor([1.0, 0.0]) * math.sqrt(radius2),
             "text": torch.tensor([gap_cosine, math.sqrt(1 - gap_cosine ** 2)]) * math.sqrt(radius2)}
    out = dict(state_dict)
    for tower, norm, proj, features in (("image", "visual.ln_post", "visual.proj", image),
                                         ("text", "ln_final", "text_projection", text)):
        gain, bias = state_dict[norm + ".weight"].float(), state_dict[norm + ".bias"].float()
        old = state_dict[proj].float()
        j = int((gain.abs() * old.norm(dim=1)).argmin())  # the channel that carries least
        others = torch.arange(len(gain)) != j
        rows = old.clone()
        rows[others] -= (gain[j] / gain[others])[:, None] * old[j]
        rows[j] = (bias[j] + gain[j] * (bias[others] / gain[others]).sum()) * old[j]
        rows *= math.sqrt(a2) / features.norm(dim=-1).mean().item()
        constant = torch.zeros(len(gain), 2)
        constant[j] = cones[tower]
        new_gain, new_bias = gain.clone(), bias.clone()
        new_gain[j], new_bias[j] = 0.0, 1.0
        out[norm + ".weight"] = new_gain.to(state_dict[norm + ".weight"].dtype)
        out[norm + ".bias"] = new_bias.to(state_dict[norm + ".bias"].dtype)
        out[proj] = torch.cat([rows, constant], dim=1).to(state_dict[proj].dtype)
    out["logit_scale"] = torch.tensor(math.log(MAX_LOGIT_SCALE))
    return out


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
    recipe = RECIPES[args.model]
    args.out = args.out or osp.join("clip", "weights", f"{args.model}.pt")
    if "construct" in recipe:
        state_dict = cone_construction(read_state_dict(model_file(recipe["construct"])),
                                       recipe["effective_scale"], recipe["matched_cosine"],
                                       recipe["text_stream_scale"], seed=args.seed)
        print(f"{args.model}: {recipe['construct']} in cone geometry, effective scale "
              f"{recipe['effective_scale']}, matched cosine {recipe['matched_cosine']}, text "
              f"stream scaled by {recipe['text_stream_scale']}")
        save_state_dict(state_dict, args.out)
        return
    for key, value in recipe.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
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
    save_state_dict(state_dict, args.out)


def save_state_dict(state_dict, out):
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    partial = out + ".partial"  # written whole, then renamed: never a half file
    torch.save(state_dict, partial)
    os.replace(partial, out)
    print(f"Saved {out} ({osp.getsize(out) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
