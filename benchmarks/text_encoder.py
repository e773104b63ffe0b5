"""Text encoder forward+backward: up to the last end-of-text token (ours) against
all 77 positions (upstream).

    python -m benchmarks.text_encoder
    python -m benchmarks.text_encoder --quick --json out.json

CoOp's prompts with 4 context vectors for class names of Food-101 (a typical
benchmark), on CLIP's text tower of the given backbone's shape (default
ViT-B/16's: 12 layers, width 512; random weights, nothing downloaded). The
mask is causal, so the positions after the last end-of-text token cannot
change the features: both paths give the same numbers (``max_abs_diff``).

``--deep-depth J`` adds deep text prompts at the input of layers 1..J-1 (IVLP, MaPLe,
PromptSRC; their published J is 9), learned too, on both paths.

JSON: ``{"truncated_ms", "full_ms", "max_abs_diff", "deep_depth"}`` (median of the
repetitions).
"""


import torch

from benchmarks.common import (
    VIT_B16,
    backbone_checkpoint,
    benchmark_parser,
    full_context_text_features,
    interleaved,
    machine,
    parse,
    print_table,
    quiet_stdout,
    write_json,
)

# Food-101 class names (the dataset's own, with underscores as spaces).
FOOD101_NAMES = [
    "apple pie", "baby back ribs", "baklava", "beef carpaccio", "beef tartare", "beet salad",
    "beignets", "bibimbap", "bread pudding", "breakfast burrito", "bruschetta", "caesar salad",
    "cannoli", "caprese salad", "carrot cake", "ceviche", "cheesecake", "cheese plate",
    "chicken curry", "chicken quesadilla", "chicken wings", "chocolate cake", "chocolate mousse",
    "churros", "clam chowder", "club sandwich", "crab cakes", "creme brulee", "croque madame",
    "cup cakes", "deviled eggs", "donuts", "dumplings", "edamame", "eggs benedict", "escargots",
    "falafel", "filet mignon", "fish and chips", "foie gras", "french fries",
    "french onion soup", "french toast", "fried calamari", "fried rice", "frozen yogurt",
    "garlic bread", "gnocchi", "greek salad", "grilled cheese sandwich",
]


def parse_args(argv=None):
    parser = benchmark_parser(__doc__, "fewer repetitions")
    parser.add_argument("--backbone", default=VIT_B16, help="shape of the text tower")
    parser.add_argument("--classes", type=int, default=len(FOOD101_NAMES),
                        help=f"at most {len(FOOD101_NAMES)}")
    parser.add_argument("--deep-depth", type=int, default=0,
                        help="deep text prompts in the first J layers (0: CoOp's prompts only)")
    return parse(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from clip import clip
    from trainers.clip_prompting import PromptLearner, TextEncoder

    print(f"Machine: {machine()}")
    model = clip.build_model(clip.read_state_dict(
        backbone_checkpoint(args.backbone, args.workdir))).float().to(args.device)
    model.requires_grad_(False)
    names = FOOD101_NAMES[:args.classes]
    with quiet_stdout():
        torch.manual_seed(0)
        learner = PromptLearner(names, model, n_ctx=4).to(args.device)
        # Deep prompts as upstream draws them: N(0, 0.02), one per layer 1..J-1.
        deep = [torch.nn.Parameter(0.02 * torch.randn(4, model.ln_final.weight.shape[0],
                                                      device=args.device))
                for _ in range(max(args.deep_depth - 1, 0))]
    layer_prompts = [None] + deep
    encoder = TextEncoder(model)
    tokenized = learner.tokenized_prompts
    _, length = encoder.end_of_text(tokenized)  # positions the truncated pass uses

    def step(encode):
        def run():
            learner.zero_grad()
            for prompt in deep:
                prompt.grad = None
            encode(learner(), tokenized, layer_prompts).sum().backward()
        return run, len(names)

    results = interleaved({
        "truncated": step(encoder),
        "full": step(lambda p, t, deep: full_context_text_features(encoder, p, t, deep)),
    }, args.reps, args.device)
    with torch.no_grad():
        prompts = learner()
        diff = (encoder(prompts, tokenized, layer_prompts) - full_context_text_features(
            encoder, prompts, tokenized, layer_prompts)).abs().max().item()

    ms = {name: r["ms_per_image"] * len(names) for name, r in results.items()}
    print_table([[name, ms[name], r["min"] * len(names), r["max"] * len(names), r["peak_mem_mb"]]
                 for name, r in results.items()],
                ["forward+backward", "ms", "fastest", "slowest", "peak MiB"],
                f"{args.backbone} text tower: {len(names)} prompts, 4 context vectors, "
                f"deep prompts in {max(args.deep_depth, 1)} layer(s), "
                f"{length} of 77 positions used, {args.reps} repetitions, {args.device}")
    print(f"full / truncated: {ms['full'] / ms['truncated']:.2f}x; max |difference| of the "
          f"features: {diff:.2e}")
    write_json(args.json, {"truncated_ms": ms["truncated"], "full_ms": ms["full"],
                           "max_abs_diff": diff, "deep_depth": args.deep_depth})


if __name__ == "__main__":
    main()
