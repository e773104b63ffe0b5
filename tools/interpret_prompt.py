"""The vocabulary tokens nearest to each learned context vector (as CoOp's
interpret_prompt.py): Euclidean distance in CLIP's token-embedding space.

    python -m tools.interpret_prompt --model-dir RUN [--topk 3] [--load-epoch N] [--out CSV]

Covers every method whose prompt learner holds CoOp's ``ctx`` (CoOp, KgCoOp, E2MIM,
and CoCoOp's static context, without the image-conditioned shift); class-specific
contexts are read class by class. Prints a table and writes CSV (default
RUN/prompt_words.csv).
"""
import argparse
import csv
import os.path as osp

import torch
from tabulate import tabulate


def nearest_tokens(ctx, token_embedding, topk):
    """Rows (class, position, rank, token id, distance) for every context vector: the
    ``topk`` nearest rows of ``token_embedding`` (exact distances, no matrix-product
    shortcut, so an unchanged initial vector is at distance 0)."""
    ctx = ctx.float()
    per_class = ctx.unsqueeze(0) if ctx.dim() == 2 else ctx  # (n_cls or 1, n_ctx, dim)
    rows = []
    for cls, vectors in enumerate(per_class):
        distances = torch.cdist(vectors, token_embedding.float(),
                                compute_mode="donot_use_mm_for_euclid_dist")
        values, indices = distances.topk(topk, dim=1, largest=False)
        for position in range(len(vectors)):
            for rank in range(topk):
                rows.append((cls if ctx.dim() == 3 else None, position + 1, rank + 1,
                             int(indices[position, rank]), float(values[position, rank])))
    return rows


def interpret(run_dir, topk=3, epoch=None):
    from clip import clip
    from clip.simple_tokenizer import SimpleTokenizer
    from dassl.utils import load_checkpoint
    from runs.saved_config import latest_epoch, load_run_config
    from trainers.clip_prompting import resolve_backbone

    cfg = load_run_config(run_dir)
    epoch = epoch or latest_epoch(run_dir)
    path = osp.join(run_dir, "prompt_learner", f"model.pth.tar-{epoch}")
    if not osp.isfile(path):
        raise SystemExit(f"interpret_prompt.py: error: {path} is missing (the run's checkpoints: "
                         f"{osp.join(run_dir, 'prompt_learner')})")
    state = load_checkpoint(path)["state_dict"]
    if "ctx" not in state:
        raise SystemExit(f"interpret_prompt.py: error: {path} holds no learned context 'ctx' "
                         f"(its tensors: {sorted(state)})")
    embedding = clip.read_state_dict(resolve_backbone(cfg.MODEL.BACKBONE.NAME))
    decoder = SimpleTokenizer().decoder
    rows = []
    for cls, position, rank, token, distance in nearest_tokens(
            state["ctx"], embedding["token_embedding.weight"], topk):
        word = decoder[token]
        rows.append({"class": "" if cls is None else cls, "position": position, "rank": rank,
                     "token": word[:-4] if word.endswith("</w>") else word, "token_id": token,
                     "distance": distance})
    return rows


def write_csv(rows, path):
    from dassl.utils import atomic_write

    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None):
    from dassl.utils import CheckpointFileError
    from datasets.errors import ConfigError

    try:
        run(argv)
    except (ConfigError, CheckpointFileError) as e:
        raise SystemExit(f"interpret_prompt.py: error: {e}") from None


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, help="a training run's output folder")
    parser.add_argument("--topk", type=int, default=3, help="tokens per context vector")
    parser.add_argument("--load-epoch", type=int, help="checkpoint epoch (default: the latest)")
    parser.add_argument("--out", default="", help="CSV path (default: RUN/prompt_words.csv)")
    args = parser.parse_args(argv)
    rows = interpret(args.model_dir, args.topk, args.load_epoch)
    print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]), floatfmt=".4f"))
    out = args.out or osp.join(args.model_dir, "prompt_words.csv")
    write_csv(rows, out)
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
