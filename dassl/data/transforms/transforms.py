"""Image pipelines built from the names in ``INPUT.TRANSFORMS``.

The training pipeline is assembled in a fixed order whatever the order of the
names, exactly as upstream Dassl does: random draws then happen in the same
order, which seeded runs depend on. Random torchvision transforms draw from the
global torch generator.
"""
import random

import numpy as np
import torch
from torchvision.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    Normalize,
    RandomApply,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)
from torchvision.transforms.functional import InterpolationMode

AVAI_CHOICES = [
    "random_flip",
    "random_resized_crop",
    "normalize",
    "instance_norm",
    "random_crop",
    "random_translation",
    "center_crop",  # accepted for config compatibility; the test pipeline always centre-crops
    "cutout",
    "gaussian_noise",
    "colorjitter",
    "randomgrayscale",
    "gaussian_blur",
]

# Upstream names whose augmentation policies this compact package does not carry.
NOT_CARRIED = ["imagenet_policy", "cifar10_policy", "svhn_policy", "randaugment",
               "randaugment_fixmatch", "randaugment2"]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """Enlarge by 1/8 and crop back to (height, width) at a random place, with probability p."""

    def __init__(self, height, width, p=0.5, interpolation=InterpolationMode.BILINEAR):
        self.height = height
        self.width = width
        self.p = p
        self.interpolation = interpolation

    def __call__(self, img):
        from torchvision.transforms import functional as F

        if random.uniform(0, 1) > self.p:
            return F.resize(img, [self.height, self.width], interpolation=self.interpolation)
        new_width, new_height = int(round(self.width * 1.125)), int(round(self.height * 1.125))
        resized_img = F.resize(img, [new_height, new_width], interpolation=self.interpolation)
        x1 = int(round(random.uniform(0, new_width - self.width)))
        y1 = int(round(random.uniform(0, new_height - self.height)))
        return F.crop(resized_img, y1, x1, self.height, self.width)


class InstanceNormalization:
    """Normalise each channel of one image by its own mean and std."""

    def __init__(self, eps=1e-8):
        self.eps = eps

    def __call__(self, img):
        C, H, W = img.shape
        img_re = img.reshape(C, H * W)
        mean = img_re.mean(1).view(C, 1, 1)
        std = img_re.std(1).view(C, 1, 1)
        return (img - mean) / (std + self.eps)


class Cutout:
    """Zero ``n_holes`` square patches of side ``length`` (NumPy's global generator)."""

    def __init__(self, n_holes=1, length=16):
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img):
        h, w = img.size(1), img.size(2)
        mask = np.ones((h, w), np.float32)
        for _ in range(self.n_holes):
            y = np.random.randint(h)
            x = np.random.randint(w)
            y1, y2 = np.clip(y - self.length // 2, 0, h), np.clip(y + self.length // 2, 0, h)
            x1, x2 = np.clip(x - self.length // 2, 0, w), np.clip(x + self.length // 2, 0, w)
            mask[y1:y2, x1:x2] = 0.0
        return img * torch.from_numpy(mask).expand_as(img)


class GaussianNoise:
    """Add N(mean, std) noise with probability p."""

    def __init__(self, mean=0, std=0.15, p=0.5):
        self.mean = mean
        self.std = std
        self.p = p

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean


def build_transform(cfg, is_train=True, choices=None):
    """The training or test pipeline for ``cfg`` (``None`` when INPUT.NO_TRANSFORM)."""
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    for choice in choices:
        if choice in NOT_CARRIED:
            raise NotImplementedError(
                f"INPUT.TRANSFORMS [{choice}] is an upstream Dassl augmentation policy this "
                f"compact dassl/ does not implement; supported: {AVAI_CHOICES}"
            )
        if choice not in AVAI_CHOICES:
            raise ValueError(
                f"Invalid transform [{choice}] in INPUT.TRANSFORMS; expected names from {AVAI_CHOICES}"
            )
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(
            f"INPUT.INTERPOLATION [{cfg.INPUT.INTERPOLATION}] must be one of {list(INTERPOLATION_MODES)}"
        )
    target_size = f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}"
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_transform_train(cfg, choices, target_size, normalize)
    return _build_transform_test(cfg, choices, target_size, normalize)


def _build_transform_train(cfg, choices, target_size, normalize):
    print("Building transform_train")
    tfm_train = []
    interp_mode = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    input_size = cfg.INPUT.SIZE

    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {target_size}")
        tfm_train += [Resize(input_size, interpolation=interp_mode)]
    if "random_translation" in choices:
        print("+ random translation")
        tfm_train += [Random2DTranslation(input_size[0], input_size[1])]
    if "random_crop" in choices:
        print(f"+ random crop (padding = {cfg.INPUT.CROP_PADDING})")
        tfm_train += [RandomCrop(input_size, padding=cfg.INPUT.CROP_PADDING)]
    if "random_resized_crop" in choices:
        scale = cfg.INPUT.RRCROP_SCALE
        print(f"+ random resized crop (size={input_size}, scale={scale})")
        tfm_train += [RandomResizedCrop(input_size, scale=scale, interpolation=interp_mode)]
    if "random_flip" in choices:
        print("+ random flip")
        tfm_train += [RandomHorizontalFlip()]
    if "colorjitter" in choices:
        b, c, s, h = (cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C,
                      cfg.INPUT.COLORJITTER_S, cfg.INPUT.COLORJITTER_H)
        print(f"+ color jitter (brightness={b}, contrast={c}, saturation={s}, hue={h})")
        tfm_train += [ColorJitter(brightness=b, contrast=c, saturation=s, hue=h)]
    if "randomgrayscale" in choices:
        print("+ random gray scale")
        tfm_train += [RandomGrayscale(p=cfg.INPUT.RGS_P)]
    if "gaussian_blur" in choices:
        print(f"+ gaussian blur (kernel={cfg.INPUT.GB_K})")
        tfm_train += [RandomApply([GaussianBlur(cfg.INPUT.GB_K)], p=cfg.INPUT.GB_P)]
    print("+ to torch tensor of range [0, 1]")
    tfm_train += [ToTensor()]
    if "cutout" in choices:
        print(f"+ cutout (n_holes={cfg.INPUT.CUTOUT_N}, length={cfg.INPUT.CUTOUT_LEN})")
        tfm_train += [Cutout(cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN)]
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm_train += [normalize]
    if "gaussian_noise" in choices:
        print(f"+ gaussian noise (mean={cfg.INPUT.GN_MEAN}, std={cfg.INPUT.GN_STD})")
        tfm_train += [GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD)]
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm_train += [InstanceNormalization()]
    return Compose(tfm_train)


def _build_transform_test(cfg, choices, target_size, normalize):
    print("Building transform_test")
    interp_mode = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    input_size = cfg.INPUT.SIZE
    print(f"+ resize the smaller edge to {max(input_size)}")
    print(f"+ {target_size} center crop")
    tfm_test = [
        Resize(max(input_size), interpolation=interp_mode),
        CenterCrop(input_size),
        ToTensor(),
    ]
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm_test += [normalize]
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm_test += [InstanceNormalization()]
    return Compose(tfm_test)
