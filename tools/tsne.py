"""t-SNE of a run's test-image features, coloured by class, with the text features of the
hand-crafted prompt and of the learned prompt as distinct markers (E2MIM paper, Fig. 2).

    python -m tools.tsne --model-dir output/base2new/train_base/oxford_flowers/shots_16/E2MIM/\
vit_b16_ep50_ctxv1/seed1 --subsample new [--out FIG] [--root DATA] [--seed 1]

The run's model is rebuilt from its printed config (log.txt) and its latest checkpoint;
--subsample picks the classes (base, new or all). scikit-learn's t-SNE, seeded.
Writes OUT.png and OUT.pdf (default RUN/tsne_<subsample>).
"""
import argparse
import os.path as osp

import numpy as np
import torch

from tools.plotting import MARKERS, close, new_figure, save_figure


@torch.no_grad()
def features(trainer):
    """(image features, labels, hand-crafted text features, learned text features),
    all L2-normalised, as numpy arrays."""
    from trainers.clip_prompting import hand_crafted_text_features, load_clip_to_cpu
    from trainers.templates import template_for

    model = trainer.model
    if trainer.cfg.TRAINER.NAME == "CoCoOp" or not hasattr(model, "prompt_learner"):
        raise SystemExit("tsne.py: error: CoCoOp's prompt depends on each image, so it has no "
                         "single learned text feature per class (and zero-shot CLIP learns none); use a "
                         "CoOp-style run (CoOp, KgCoOp, E2MIM)")
    images, labels = [], []
    for batch in trainer.test_loader:
        image, label = trainer.parse_batch_test(batch)
        images.append(model.image_features(image).float().cpu())
        labels.append(label.cpu())
    learned = model.text_features().float().cpu()
    clip_model = load_clip_to_cpu(trainer.cfg).float().to(trainer.device)
    template = template_for(trainer.cfg.DATASET)
    hand = hand_crafted_text_features(clip_model, trainer.dm.dataset.classnames, [template],
                                      trainer.device).float().cpu()
    return (torch.cat(images).numpy(), torch.cat(labels).numpy(), hand.numpy(), learned.numpy())


def embed(points, seed):
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(points) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                ).fit_transform(points)


def plot(run_dir, out_base, subsample="new", seed=1, root="", title=""):
    from runs.saved_config import rebuild_trainer

    trainer = rebuild_trainer(run_dir, "DATASET.SUBSAMPLE_CLASSES", subsample, root=root)
    images, labels, hand, learned = features(trainer)
    n_img, n_cls = len(images), len(hand)
    xy = embed(np.concatenate([images, hand, learned]), seed)
    img_xy, hand_xy, learned_xy = xy[:n_img], xy[n_img:n_img + n_cls], xy[n_img + n_cls:]
    classnames = trainer.dm.dataset.classnames
    fig, (ax,) = new_figure(1, width=6.5, height=5.5)
    for c in range(n_cls):
        mask = labels == c
        ax.scatter(img_xy[mask, 0], img_xy[mask, 1], s=10, alpha=0.6, color=f"C{c % 10}",
                   marker=MARKERS[c % len(MARKERS)], label=classnames[c] if n_cls <= 10 else None,
                   gid=f"images|{c}")
    ax.scatter(hand_xy[:, 0], hand_xy[:, 1], s=160, marker="*", c=[f"C{c % 10}" for c in range(n_cls)],
               edgecolors="black", linewidths=1.0, label="hand-crafted prompt", gid="hand-crafted")
    ax.scatter(learned_xy[:, 0], learned_xy[:, 1], s=90, marker="D",
               c=[f"C{c % 10}" for c in range(n_cls)], edgecolors="black", linewidths=1.5,
               label="learned prompt", gid="learned")
    method = trainer.cfg.TRAINER.NAME
    ax.set_title(title or f"{method}, {trainer.cfg.DATASET.NAME}, {subsample} classes: t-SNE")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize="x-small", loc="best")
    return fig, save_figure(fig, out_base)


def main(argv=None):
    from datasets.errors import ConfigError

    try:
        run(argv)
    except ConfigError as e:
        raise SystemExit(f"tsne.py: error: {e}") from None


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, help="a training run's output folder")
    parser.add_argument("--subsample", choices=["base", "new", "all"], default="new")
    parser.add_argument("--root", default="", help="dataset folder (default: the run's)")
    parser.add_argument("--seed", type=int, default=1, help="t-SNE's random_state")
    parser.add_argument("--out", default="", help="output path without extension")
    args = parser.parse_args(argv)
    fig, paths = plot(args.model_dir, args.out or osp.join(args.model_dir, f"tsne_{args.subsample}"),
                      args.subsample, args.seed, args.root)
    close(fig)
    print("Wrote " + " and ".join(paths))


if __name__ == "__main__":
    main()
