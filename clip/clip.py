"""Loading CLIP: release names, verified downloads, checkpoints, tokenization, preprocessing."""
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile

import torch
from torchvision.transforms import (
    CenterCrop,
    Compose,
    InterpolationMode,
    Normalize,
    Resize,
    ToTensor,
)
from tqdm import tqdm

from .model import build_model
from .simple_tokenizer import SimpleTokenizer as _Tokenizer

__all__ = ["available_models", "build_model", "load", "model_file", "read_state_dict", "tokenize",
           "CONTEXT_LENGTH"]

CONTEXT_LENGTH = 77  # text positions of every released CLIP: SOS, the text, EOS must fit
_tokenizer = _Tokenizer()

# OpenAI's release URLs; the folder name of each is the SHA256 of the file.
_MODELS = {
    "RN50": "https://openaipublic.azureedge.net/clip/models/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": "https://openaipublic.azureedge.net/clip/models/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": "https://openaipublic.azureedge.net/clip/models/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    "RN50x16": "https://openaipublic.azureedge.net/clip/models/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt",
    "RN50x64": "https://openaipublic.azureedge.net/clip/models/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt",
    "ViT-B/32": "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    "ViT-B/16": "https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "ViT-L/14": "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    "ViT-L/14@336px": "https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
}

DEFAULT_ROOT = os.path.expanduser("~/.cache/clip")

# Models shipped inside this repository (not OpenAI releases): name -> file.
_SHIPPED = {name: os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", f"{name}.pt")
            for name in ("SynthCLIP-RN", "SynthCLIP-ViT", "SynthCLIP-Cone")}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, root: str = None) -> str:
    """Fetch ``url`` into ``root`` (default ``~/.cache/clip``) and return the path.

    The file's SHA256 must equal the folder name of the URL. The transfer goes
    to a temporary file that is renamed only once the hash matches, so the cache
    never holds a partial or wrong file; a cached file with a wrong hash is
    fetched again.
    """
    root = os.path.expanduser(root or DEFAULT_ROOT)
    os.makedirs(root, exist_ok=True)
    filename = os.path.basename(url)
    expected_sha256 = url.split("/")[-2]
    target = os.path.join(root, filename)

    if os.path.exists(target) and not os.path.isfile(target):
        raise RuntimeError(f"{target} exists and is not a regular file")
    if os.path.isfile(target):
        if _sha256(target) == expected_sha256:
            return target
        warnings.warn(f"{target} exists, but its SHA256 checksum does not match; "
                      "downloading the file again")

    fd, tmp_path = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as output:
            try:
                source = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError) as e:
                raise RuntimeError(
                    f"Could not download {filename} from {url} ({e}). Without network access, "
                    f"place the file by hand at {target} (SHA256 {expected_sha256}), or pass "
                    "download_root / a local checkpoint path instead of a model name."
                ) from e
            with source:
                total = source.info().get("Content-Length")
                with tqdm(total=int(total) if total else None, ncols=80, unit="iB",
                          unit_scale=True, unit_divisor=1024, desc=filename) as bar:
                    received = 0
                    while True:
                        buffer = source.read(8192)
                        if not buffer:
                            break
                        output.write(buffer)
                        received += len(buffer)
                        bar.update(len(buffer))
                if total is not None and received != int(total):
                    raise RuntimeError(
                        f"Download of {filename} was cut off ({received} of {total} bytes); "
                        "nothing was written to the cache, try again")
        actual = _sha256(tmp_path)
        if actual != expected_sha256:
            raise RuntimeError(
                f"Downloaded {filename}, but its SHA256 checksum {actual} does not match "
                f"{expected_sha256}; the file was discarded")
        os.replace(tmp_path, target)
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
    return target


def _convert_image_to_rgb(image):
    return image.convert("RGB")


def _transform(n_px):
    """CLIP's preprocessing: bicubic resize, center crop, CLIP's mean and std."""
    return Compose([
        Resize(n_px, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(n_px),
        _convert_image_to_rgb,
        ToTensor(),
        Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])


def available_models() -> list[str]:
    """The names of the released CLIP models, then those shipped with this repository."""
    return list(_MODELS.keys()) + list(_SHIPPED.keys())


def model_file(name: str, download_root: str = None) -> str:
    """The checkpoint file of ``name``: a release (downloaded once into ``download_root``,
    default ``~/.cache/clip``, its SHA256 checked on every use), a model shipped in
    clip/weights/, or the path of a file the user names. These are the only files CLIP
    is read from, and the only ones that may be TorchScript archives, which are
    programs (docs/SECURITY.md)."""
    if name in _MODELS:
        return _download(_MODELS[name], download_root or DEFAULT_ROOT)
    if name in _SHIPPED:
        return _SHIPPED[name]
    if os.path.isfile(name):
        return name
    raise RuntimeError(f"Model {name} not found; available models = {available_models()} "
                       "(or give the path of a checkpoint file)")


def _is_torchscript_archive(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name
                       for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _jit_load(path, device):
    # OpenAI released its checkpoints as TorchScript archives, and
    # torch.jit.load is the only reader of that format; torch marks the whole
    # torch.jit API deprecated, a notice that says nothing about these files.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        return torch.jit.load(path, map_location=device).eval()


def read_state_dict(model_path):
    """The state dict of a TorchScript archive or of a plain (possibly wrapped) state-dict file
    (a file from ``model_file``: TorchScript runs as code)."""
    if _is_torchscript_archive(model_path):
        try:
            return _jit_load(model_path, "cpu").state_dict()
        except RuntimeError as e:
            raise RuntimeError(f"{model_path} looks like a TorchScript archive but cannot be "
                               f"loaded: {e}") from e
    try:
        state_dict = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(
            f"{model_path} is neither a TorchScript archive nor a state dict of CLIP "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or "token_embedding.weight" not in state_dict:
        raise RuntimeError(f"{model_path} holds no CLIP state dict (no token_embedding.weight)")
    return state_dict


def load(name: str, device: str | torch.device = "cuda" if torch.cuda.is_available() else "cpu",
         jit: bool = False, download_root: str = None):
    """Load a CLIP model by release name or from a local file.

    Returns ``(model, preprocess)``. The file may be a TorchScript archive (as
    released by OpenAI) or a plain state dict. On the CPU the model is cast to
    float32 (fp16 kernels are slow or missing there); on CUDA the released mixed
    precision is kept. ``jit=True`` returns the TorchScript module itself
    (archives only, and without OpenAI's device-patching of traced graphs).
    """
    model_path = model_file(name, download_root)

    if jit:
        if not _is_torchscript_archive(model_path):
            raise RuntimeError(f"jit=True needs a TorchScript archive; {model_path} is not one")
        model = _jit_load(model_path, device)
        return model, _transform(model.input_resolution.item())

    model = build_model(read_state_dict(model_path)).to(device)
    if str(device) == "cpu":
        model.float()
    return model, _transform(model.visual.input_resolution)


def tokenize(texts: str | list[str], context_length: int = CONTEXT_LENGTH,
             truncate: bool = False) -> torch.LongTensor:
    """Token ids of ``texts``, start and end tokens included, zero-padded to ``context_length``.

    A text longer than the context raises, unless ``truncate`` keeps its first
    ``context_length`` tokens and ends them with the end-of-text token.
    """
    if isinstance(texts, str):
        texts = [texts]
    sot_token = _tokenizer.encoder["<|startoftext|>"]
    eot_token = _tokenizer.encoder["<|endoftext|>"]
    all_tokens = [[sot_token] + _tokenizer.encode(text) + [eot_token] for text in texts]
    # int64, as the CLIP copy bundled with CoOp returns (ids index embeddings directly).
    result = torch.zeros(len(all_tokens), context_length, dtype=torch.long)
    for i, tokens in enumerate(all_tokens):
        if len(tokens) > context_length:
            if not truncate:
                raise RuntimeError(f"Input {texts[i]} is too long for context length {context_length}")
            tokens = tokens[:context_length]
            tokens[-1] = eot_token
        result[i, :len(tokens)] = torch.tensor(tokens)
    return result
