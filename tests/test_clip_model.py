"""clip/: loading, parity with OpenAI's code, fp16 handling, bad input."""
import warnings

import pytest
import torch
from torch import nn

from clip import clip
from clip.model import AvgPool2d, build_model
from clip.shapes import random_state_dict
from tests.oracles import openai_clip

SHAPES = ["tiny-ViT", "tiny-RN"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Per tiny shape: (state-dict file, TorchScript archive, state dict)."""
    folder = tmp_path_factory.mktemp("clip")
    out = {}
    for shape in SHAPES:
        sd = random_state_dict(shape, seed=7)
        plain = folder / f"{shape}.pt"
        torch.save(sd, plain)
        model32 = build_model(sd).float()
        res = model32.visual.input_resolution
        with warnings.catch_warnings():  # tracing is deprecated and chatty; fine for a fixture
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model32, (torch.randn(1, 3, res, res),
                                               clip.tokenize("a dog")))
        archive = folder / f"{shape}.jit.pt"
        traced.save(str(archive))
        out[shape] = (str(plain), str(archive), sd)
    return out


def _inputs(model):
    res = model.visual.input_resolution
    images = torch.randn(3, 3, res, res, generator=torch.Generator().manual_seed(1))
    texts = clip.tokenize(["a photo of a dog.", "a bad photo of the red car", "Zebra!"])
    return images, texts


@pytest.mark.parametrize("shape", SHAPES)
def test_state_dict_and_torchscript_archive_load_identically(checkpoints, shape):
    plain, archive, _ = checkpoints[shape]
    m1, preprocess = clip.load(plain, device="cpu")
    m2, _ = clip.load(archive, device="cpu")
    images, texts = _inputs(m1)
    with torch.no_grad():
        assert torch.equal(m1.encode_image(images), m2.encode_image(images))
        assert torch.equal(m1.encode_text(texts), m2.encode_text(texts))
    assert m1.dtype == torch.float32  # CPU: float32, as OpenAI's load does
    assert preprocess.transforms[1].size == (m1.visual.input_resolution,) * 2


@pytest.mark.parametrize("shape", SHAPES)
def test_parity_with_openai_code(checkpoints, shape):
    plain, _, sd = checkpoints[shape]
    oracle = openai_clip()
    reference = oracle.model.build_model(dict(sd)).float().eval()
    ours, _ = clip.load(plain, device="cpu")
    assert list(ours.state_dict()) == list(reference.state_dict())  # same keys, same order
    images, texts = _inputs(ours)
    with torch.no_grad():
        for encode in ("encode_image", "encode_text"):
            a = getattr(ours, encode)(images if encode == "encode_image" else texts)
            b = getattr(reference, encode)(images if encode == "encode_image" else texts)
            assert a.shape == b.shape
            # The same operations in the same order: bit for bit, not merely close.
            assert torch.equal(a, b), (encode, (a - b).abs().max())
        la, _ = ours(images, texts)
        lb, _ = reference(images, texts)
        assert torch.allclose(la, lb, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fast_average_pool_is_bitwise_torchs(dtype, memory_format):
    """The strided-sum pool (CPU fp32/fp64) equals torch's kernel exactly, odd sizes
    (floor mode) and a wide range of magnitudes included; other dtypes use the kernel."""
    generator = torch.Generator().manual_seed(3)
    for shape in [(2, 3, 9, 11), (5, 8, 16, 16), (1, 4, 2, 3)]:
        magnitude = torch.logspace(-12, 12, shape[-1]) if dtype != torch.float16 else 1.0
        x = (torch.randn(shape, generator=generator) * magnitude).to(dtype)
        x = x.contiguous(memory_format=memory_format)
        for k in (2, 3):
            if min(shape[-2:]) < k:
                with pytest.raises(RuntimeError):
                    AvgPool2d(k)(x)
                continue
            ours, torchs = AvgPool2d(k)(x), nn.AvgPool2d(k)(x)
            assert ours.shape == torchs.shape and torch.equal(ours, torchs), (shape, k)


def test_build_model_keeps_released_mixed_precision(checkpoints):
    _, _, sd = checkpoints["tiny-ViT"]
    assert sd["visual.conv1.weight"].dtype == torch.float16
    assert sd["ln_final.weight"].dtype == torch.float32
    model = build_model(sd)  # what load() keeps on CUDA
    assert model.visual.conv1.weight.dtype == torch.float16
    assert model.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.float16
    assert model.text_projection.dtype == torch.float16
    assert model.ln_final.weight.dtype == torch.float32
    assert model.token_embedding.weight.dtype == torch.float32
    assert model.visual.transformer.resblocks[0].attn.num_heads == 1  # 64 wide -> 1 head


def test_model_attributes_prompt_learners_use(checkpoints):
    model, _ = clip.load(checkpoints["tiny-RN"][0], device="cpu")
    for name in ("token_embedding", "positional_embedding", "transformer", "ln_final",
                 "text_projection", "logit_scale", "visual", "dtype"):
        assert hasattr(model, name)
    assert model.visual.input_resolution == 64 and model.context_length == 77


def test_unknown_model_name_lists_available():
    with pytest.raises(RuntimeError) as info:
        clip.load("ViT-B/61", device="cpu")
    assert "ViT-B/16" in str(info.value) and "RN50x64" in str(info.value)
    # OpenAI's releases, in OpenAI's order, then the model shipped with this repository.
    assert clip.available_models() == ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64",
                                       "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px",
                                       "SynthCLIP-RN", "SynthCLIP-ViT", "SynthCLIP-Cone"]


def test_file_that_is_not_a_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(RuntimeError, match="weights.pt"):
        clip.load(str(bad), device="cpu")
    other = tmp_path / "other.pt"
    torch.save({"a": torch.ones(1)}, other)
    with pytest.raises(RuntimeError, match="other.pt"):
        clip.load(str(other), device="cpu")


def test_truncated_causal_mask_equals_full_context(checkpoints):
    """Running the text transformer on a prefix that holds the end token gives
    the same features as the full 77 positions (causal mask)."""
    model, _ = clip.load(checkpoints["tiny-ViT"][0], device="cpu")
    texts = clip.tokenize(["a photo of a dog.", "an origami crane"])
    length = int(texts.argmax(-1).max()) + 1
    with torch.no_grad():
        full = model.encode_text(texts)
        x = model.token_embedding(texts[:, :length]) + model.positional_embedding[:length]
        x = model.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = model.ln_final(x)
        short = x[torch.arange(2), texts[:, :length].argmax(-1)] @ model.text_projection
    assert torch.allclose(full, short, atol=1e-5, rtol=0)
