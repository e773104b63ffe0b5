"""Evaluation throughput: ours against upstream's per-batch text encoding.

    python -m benchmarks.eval_speed
    python -m benchmarks.eval_speed --quick --json out.json

Upstream CoOp-family evaluation calls the model's forward for every test batch,
so the class prompts go through the text encoder again for every batch, over
all 77 token positions. Ours encodes them once per evaluation, only up to the
last end-of-text token, and then encodes each test image once. Both run here
on the same trained-state CoOp model (random context vectors of a fixed seed),
the same preloaded test batches and class count; the data loading, the same
for both, is left out. The upstream-style path is written out in this file.

A third case, the image encoder alone, is the ceiling of any evaluation that
keeps the numbers: the ratio can be at most (per-batch text) / (image encoder
alone) = 1 + (classes / batch size) x (77-position prompt pass) / (image forward),
a property of the model and the batch size, not of the code.

JSON: ``{"ours_images_per_s", "per_batch_text_images_per_s", "same_predictions",
"image_encoder_images_per_s"}``.
"""


import torch

from benchmarks.common import (
    TINY_BACKBONE,
    benchmark_parser,
    build_trainer,
    full_context_text_features,
    interleaved,
    machine,
    parse,
    print_table,
    world_root,
    write_json,
)


def parse_args(argv=None):
    parser = benchmark_parser(__doc__, "fewer test images and repetitions")
    parser.add_argument("--backbone", default=TINY_BACKBONE,
                        help=f"{TINY_BACKBONE} (shipped) or a release name, e.g. ViT-B/16 "
                             "(random weights)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100, help="test batch size (CoOp's: 100)")
    return parse(parser, argv)


def upstream_text_features(model):
    """Upstream's text path: the learned prompts over all 77 positions, normalised."""
    prompts = model.prompt_learner()
    x = full_context_text_features(model.text_encoder, prompts,
                                   model.prompt_learner.tokenized_prompts)
    return x / x.norm(dim=-1, keepdim=True)


def upstream_forward(model, image):
    """Upstream's CustomCLIP.forward: image features, text features, logits, per batch."""
    image_features = model.image_features(image)
    return model.logits(image_features, upstream_text_features(model))


@torch.no_grad()
def main(argv=None):
    args = parse_args(argv)
    print(f"Machine: {machine()}")
    # An evaluation of a typical size (the world's test split has 30 images a class).
    per_class = 10 if args.quick else 30
    world = world_root(args.workdir, args.classes, train_per_class=1, test_per_class=per_class)
    trainer = build_trainer("CoOp", args.backbone, args.workdir, world,
                            ["DATALOADER.TEST.BATCH_SIZE", str(args.batch),
                             "TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.N_CTX", "4"],
                            args.device)
    trainer.set_model_mode("eval")
    model = trainer.model
    batches = [batch["img"].to(args.device) for batch in trainer.test_loader]
    n_images = sum(len(b) for b in batches)

    predictions = {}

    def ours():
        with model.frozen_text_features():  # what trainer.test() does
            predictions["ours"] = torch.cat([model(b).argmax(-1) for b in batches])

    def per_batch_text():
        predictions["upstream"] = torch.cat([upstream_forward(model, b).argmax(-1)
                                             for b in batches])

    def image_encoder_alone():
        for b in batches:
            model.image_features(b)

    results = interleaved({"ours": (ours, n_images), "per-batch text": (per_batch_text, n_images),
                           "image encoder alone": (image_encoder_alone, n_images)},
                          args.reps, args.device)
    same = bool(torch.equal(predictions["ours"], predictions["upstream"]))
    ours_ips = 1000 / results["ours"]["ms_per_image"]
    theirs_ips = 1000 / results["per-batch text"]["ms_per_image"]
    encoder_ips = 1000 / results["image encoder alone"]["ms_per_image"]
    print_table([[name, 1000 / r["ms_per_image"], 1000 / r["max"], 1000 / r["min"],
                  r["peak_mem_mb"]] for name, r in results.items()],
                ["evaluation", "images/s", "slowest", "fastest", "peak MiB"],
                f"{args.backbone}: {args.classes} classes, {n_images} test images in batches of "
                f"{args.batch}, {args.reps} repetitions, {args.device}")
    print(f"ours / per-batch text: {ours_ips / theirs_ips:.2f}x; identical predictions: {same}")
    print(f"ceiling (image encoder alone / per-batch text): {encoder_ips / theirs_ips:.2f}x; "
          f"ours runs at {ours_ips / encoder_ips:.0%} of the image encoder's speed")
    write_json(args.json, {"ours_images_per_s": ours_ips,
                           "per_batch_text_images_per_s": theirs_ips,
                           "same_predictions": same,
                           "image_encoder_images_per_s": encoder_ips})


if __name__ == "__main__":
    main()
