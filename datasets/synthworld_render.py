"""SynthWorld's pictures and captions: coloured shapes on noisy backgrounds, in torch.

Everything is drawn from a ``torch.Generator``, so a seed fixes every pixel.
Images are float tensors in [0, 1], shape (N, 3, size, size), rendered for a
whole batch at once on a coordinate grid (a shape is a mask in the object's own
rotated and scaled coordinates).
"""
import math

import torch

COLOURS = {  # name: RGB in [0, 1]; every name is a single CLIP BPE token
    "red": (0.86, 0.10, 0.10), "orange": (0.98, 0.55, 0.05), "yellow": (0.95, 0.88, 0.10),
    "green": (0.15, 0.70, 0.20), "blue": (0.12, 0.30, 0.90), "purple": (0.55, 0.18, 0.75),
    "pink": (0.98, 0.52, 0.75), "brown": (0.52, 0.32, 0.12), "cyan": (0.10, 0.82, 0.85),
    "gray": (0.52, 0.52, 0.52), "black": (0.05, 0.05, 0.05), "white": (0.96, 0.96, 0.96),
}
SHAPES = ["circle", "square", "triangle", "star", "cross", "ring", "diamond", "heart",
          "hexagon", "moon", "arrow", "oval"]
TEXTURES = ["solid", "striped", "dotted"]


def _shape_mask(shape, u, v):
    """Inside-mask of ``shape`` in unit object coordinates (u right, v down)."""
    r = torch.sqrt(u * u + v * v)
    phi = torch.atan2(v, u)
    if shape == "circle":
        return r <= 0.95
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.78
    if shape == "triangle":
        return (v <= 0.7) & (v >= -0.9 + 2.0 * u.abs())
    if shape == "star":
        return r <= 0.38 + 0.58 * ((1 + torch.cos(5 * (phi + math.pi / 2))) / 2) ** 2
    if shape == "cross":
        return ((u.abs() <= 0.28) & (v.abs() <= 0.92)) | ((v.abs() <= 0.28) & (u.abs() <= 0.92))
    if shape == "ring":
        return (r <= 0.95) & (r >= 0.58)
    if shape == "diamond":
        return u.abs() / 0.75 + v.abs() <= 0.98
    if shape == "heart":
        x, y = 1.25 * u, -1.25 * v + 0.25
        return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0
    if shape == "hexagon":
        return torch.maximum(u.abs() * 0.866 + v.abs() * 0.5, v.abs()) <= 0.85
    if shape == "moon":
        return (r <= 0.92) & ((u - 0.42) ** 2 + (v + 0.18) ** 2 > 0.62 ** 2)
    if shape == "arrow":
        shaft = (v.abs() <= 0.2) & (u >= -0.92) & (u <= 0.15)
        head = (u >= 0.1) & (u <= 0.95) & (v.abs() <= 0.95 * (0.95 - u))
        return shaft | head
    if shape == "oval":
        return (u / 0.98) ** 2 + (v / 0.55) ** 2 <= 1
    raise KeyError(shape)


def _uniform(n, low, high, gen):
    return low + (high - low) * torch.rand(n, generator=gen)


def _draw_objects(canvas, grid, shape_ids, colours, size_range, gen, textures=None):
    """Paint one object per image onto ``canvas`` (N, 3, S, S), in place. Returns the
    object attributes drawn (size, position, texture) for the captions."""
    n = canvas.shape[0]
    scale = _uniform(n, *size_range, gen)
    centre = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - scale).unsqueeze(1)
    angle = _uniform(n, -math.radians(20), math.radians(20), gen)
    if textures is None:
        textures = torch.randint(len(TEXTURES), (n,), generator=gen)
    brightness = _uniform(n, 0.85, 1.15, gen)
    x = grid[0].unsqueeze(0) - centre[:, 0].view(n, 1, 1)
    y = grid[1].unsqueeze(0) - centre[:, 1].view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    u = (cos * x + sin * y) / scale.view(n, 1, 1)
    v = (-sin * x + cos * y) / scale.view(n, 1, 1)
    mask = torch.zeros_like(u, dtype=torch.bool)
    for index, shape in enumerate(SHAPES):
        chosen = shape_ids == index
        if chosen.any():
            mask[chosen] = _shape_mask(shape, u[chosen], v[chosen])
    shade = torch.ones_like(u)
    striped = (textures == 1).view(n, 1, 1) & (torch.sin(7 * u) > 0.3)
    dotted = (textures == 2).view(n, 1, 1) & (torch.cos(8 * u) * torch.cos(8 * v) > 0.45)
    shade[striped | dotted] = 0.55
    colour = (colours * brightness.unsqueeze(1)).clamp(0, 1)
    paint = colour.view(n, 3, 1, 1) * shade.unsqueeze(1)
    canvas.copy_(torch.where(mask.unsqueeze(1), paint, canvas))
    return scale, centre, textures


def _background(n, size, grid, gen):
    tint = _uniform(n * 3, 0.25, 0.75, gen).view(n, 3, 1, 1)
    light = _uniform(n, 0.35, 1.0, gen).view(n, 1, 1, 1)
    canvas = (tint * light).expand(n, 3, size, size).clone()
    for _ in range(3):  # low-frequency blobs
        centre = torch.rand(n, 2, generator=gen) * 2 - 1
        width = _uniform(n, 0.3, 0.8, gen).view(n, 1, 1)
        amplitude = _uniform(n * 3, -0.2, 0.2, gen).view(n, 3, 1, 1)
        d2 = (grid[0] - centre[:, 0].view(n, 1, 1)) ** 2 + (grid[1] - centre[:, 1].view(n, 1, 1)) ** 2
        canvas += amplitude * torch.exp(-d2 / (2 * width ** 2)).unsqueeze(1)
    canvas += 0.04 * torch.randn(n, 3, size, size, generator=gen)
    return canvas.clamp(0, 1), light.view(n)


def hue_rotation(images, degrees):
    """Rotate the hue of RGB images by ``degrees`` (a rotation about the grey axis)."""
    if degrees == 0:
        return images
    theta = math.radians(degrees)
    k = torch.full((3,), 1 / math.sqrt(3))
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rotation = (math.cos(theta) * torch.eye(3) + math.sin(theta) * cross
                + (1 - math.cos(theta)) * torch.outer(k, k))
    return torch.einsum("ij,njhw->nihw", rotation, images).clamp(0, 1)


def render(colour_ids, shape_ids, gen, colour_names, size=32, hue_shift=0.0,
           distractor_prob=0.25):
    """Images of the given (colour, shape) pairs, and their attributes for captions."""
    n = len(shape_ids)
    coords = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
    grid = torch.stack(torch.meshgrid(coords, coords, indexing="xy"))
    canvas, light = _background(n, size, grid, gen)
    palette = torch.tensor([COLOURS[name] for name in colour_names])

    # A smaller distractor of another shape and colour, drawn first (behind).
    has_distractor = torch.rand(n, generator=gen) < distractor_prob
    other_shape = (shape_ids + torch.randint(1, len(SHAPES), (n,), generator=gen)) % len(SHAPES)
    other_colour = (colour_ids + torch.randint(1, len(palette), (n,), generator=gen)) % len(palette)
    distractor = canvas.clone()
    _draw_objects(distractor, grid, other_shape, palette[other_colour], (0.2, 0.35), gen)
    canvas = torch.where(has_distractor.view(n, 1, 1, 1), distractor, canvas)

    scale, centre, textures = _draw_objects(canvas, grid, shape_ids, palette[colour_ids],
                                            (0.4, 0.8), gen)
    images = hue_rotation(canvas, hue_shift)
    attributes = {"scale": scale, "centre": centre, "texture": textures, "light": light}
    return images, attributes


# ---------------------------------------------------------------- captions
CAPTION_TEMPLATES = [
    "a photo of a {obj}.", "a {obj}.", "an image of a {obj}.", "a picture of a {obj}.",
    "a drawing of a {obj}.", "a {obj} on a {bg} background.", "a {size} {obj}.",
    "a {texture} {obj}.", "a {obj} {pos}.", "there is a {obj} {pos}.",
    "a {size} {texture} {obj}.", "a rendering of a {obj}.", "the {obj}.", "one {obj}.",
    "a small picture showing a {obj}.", "a {obj}, {pos}.", "a close-up of a {obj}.",
    "a {obj} shape.", "a photo of the {size} {obj}.", "a {texture} {obj} on a {bg} background.",
]
FILLERS = ["", "", "", "look at this: ", "in this picture, ", "here we see ", "this shows ",
           "a simple scene: ", "my drawing: "]


def captions(colour_ids, shape_ids, attributes, gen, colour_names):
    """One caption per image, from varied templates so that class words move around."""
    texts = []
    pick = torch.randint(len(CAPTION_TEMPLATES), (len(shape_ids),), generator=gen).tolist()
    fill = torch.randint(len(FILLERS), (len(shape_ids),), generator=gen).tolist()
    for i, (c, s) in enumerate(zip(colour_ids.tolist(), shape_ids.tolist())):
        scale = attributes["scale"][i].item()
        x, y = attributes["centre"][i].tolist()
        size = "small" if scale < 0.53 else "large" if scale > 0.67 else "medium"
        pos = ("on the left" if x < -0.15 else "on the right" if x > 0.15
               else "at the top" if y < -0.15 else "at the bottom" if y > 0.15 else "in the middle")
        bg = "dark" if attributes["light"][i].item() < 0.6 else "light"
        texture = TEXTURES[attributes["texture"][i].item()]
        text = CAPTION_TEMPLATES[pick[i]].format(obj=f"{colour_names[c]} {SHAPES[s]}",
                                                 size=size, pos=pos, bg=bg, texture=texture)
        texts.append(FILLERS[fill[i]] + text)
    return texts
