"""Architecture dimensions of the released CLIP models, as data.

``random_state_dict`` builds a state dict of any of these shapes with random
weights, in OpenAI's format and mixed precision: tests use the tiny shapes, and
benchmarks the real ones (a ViT-B/16-shaped model with nothing downloaded).
"""
import torch

from .model import CLIP, convert_weights

# name: (embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
#        context_length, vocab_size, transformer_width, transformer_heads, transformer_layers)
MODEL_SHAPES = {
    "RN50": (1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12),
    "RN101": (512, 224, (3, 4, 23, 3), 64, None, 77, 49408, 512, 8, 12),
    "RN50x4": (640, 288, (4, 6, 10, 6), 80, None, 77, 49408, 640, 10, 12),
    "RN50x16": (768, 384, (6, 8, 18, 8), 96, None, 77, 49408, 768, 12, 12),
    "RN50x64": (1024, 448, (3, 15, 36, 10), 128, None, 77, 49408, 1024, 16, 12),
    "ViT-B/32": (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),
    "ViT-B/16": (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
    "ViT-L/14": (768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12),
    "ViT-L/14@336px": (768, 336, 24, 1024, 14, 77, 49408, 768, 12, 12),
    # The CLIPs pretrained on SynthWorld (tools/pretrain_synthclip.py), shipped in clip/weights/.
    "SynthCLIP-RN": (128, 32, (1, 1, 1, 1), 24, None, 77, 49408, 128, 2, 3),
    # 8-pixel patches (a 4x4 grid), width 64, 9 layers: vision prompts to depth 9 fit; the
    # text tower is SynthCLIP-RN's (tools/pretrain_synthclip.py distils into its space).
    "SynthCLIP-ViT": (128, 32, 9, 64, 8, 77, 49408, 128, 2, 3),
    # SynthCLIP-ViT in the releases' cone geometry (two constant feature columns appended).
    "SynthCLIP-Cone": (130, 32, 9, 64, 8, 77, 49408, 128, 2, 3),
    # Tiny shapes for tests: one attention head per tower (width 64).
    "tiny-ViT": (32, 32, 2, 64, 8, 77, 49408, 64, 1, 2),
    "tiny-RN": (32, 64, (1, 1, 1, 1), 8, None, 77, 49408, 64, 1, 2),
}


def random_state_dict(shape, seed=0, fp16=True):
    """A CLIP state dict of ``shape`` (a key of MODEL_SHAPES) with random weights.

    With ``fp16`` the conv, linear and attention weights and the projections are
    half precision and the rest float32, as in the released checkpoints.
    """
    if shape not in MODEL_SHAPES:
        raise KeyError(f"Unknown CLIP shape [{shape}]; known: {list(MODEL_SHAPES)}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = CLIP(*MODEL_SHAPES[shape])
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's RNG untouched
    # Random BatchNorm statistics so that eval-mode ResNets are not trivial.
    gen = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 1.5, generator=gen)
            module.weight.data.uniform_(0.5, 1.5, generator=gen)
    if fp16:
        convert_weights(model)
    return model.state_dict()
