"""Bundled and generated image-classification datasets, as Images (tasks/classification/data.py).

`digits_images` (the bundled 8x8 digits) and `shapes` (generated geometric shapes) need no
download; the shape drawing here is shared by the segmentation and detection scenes.
"""
from __future__ import annotations

import math
import numpy as np
import torch

from ..errors import ConfigError
from ..registry import DATASETS
from ..tasks.classification.data import Images


def resize(X: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize a (N, C, H, W) batch to size x size (antialiased bilinear); uint8 stays uint8."""
    if not size or (X.shape[-1] == size and X.shape[-2] == size):
        return X
    import torchvision.transforms.v2.functional as TF

    return TF.resize(X, [size, size], antialias=True)


@DATASETS.register("digits_images", kind="classification")
def digits_images(image_size=None):
    """The bundled 1,797 handwritten digits as 1x8x8 images (data.image_size to resize), 10 classes."""
    from sklearn.datasets import load_digits

    b = load_digits()
    X = torch.from_numpy((b.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)  # (N, 1, 8, 8)
    return Images(resize(X, image_size), torch.from_numpy(b.target.astype(np.int64)), [str(c) for c in b.target_names])


SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "diamond", "ring")


def _polygon(cx, cy, r, n, rot, inner=None):
    pts = []
    for i in range(n * (2 if inner else 1)):
        a = rot + math.pi * 2 * i / (n * (2 if inner else 1))
        rr = r if not inner or i % 2 == 0 else r * inner
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def draw_shape(draw, kind: str, cx: float, cy: float, r: float, rot: float, fill) -> None:
    """Draw one shape centred at (cx, cy) with radius r and rotation rot (PIL ImageDraw)."""
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, int(r / 3)))
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r * 1.2, 4, rot + math.pi / 4), fill=fill)
    elif kind == "diamond":
        draw.polygon([(cx, cy - r * 1.2), (cx + r * 0.7, cy), (cx, cy + r * 1.2), (cx - r * 0.7, cy)], fill=fill)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.2, 3, rot - math.pi / 2), fill=fill)
    elif kind == "hexagon":
        draw.polygon(_polygon(cx, cy, r * 1.1, 6, rot), fill=fill)
    elif kind == "star":
        draw.polygon(_polygon(cx, cy, r * 1.3, 5, rot - math.pi / 2, inner=0.45), fill=fill)
    elif kind == "cross":
        w = r * 0.35
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        c, s = math.cos(rot), math.sin(rot)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=fill)
    else:
        raise ValueError(kind)


def render_shape(rng: np.random.RandomState, kind: str, size: int, channels: int, noise: float) -> np.ndarray:
    """One (size, size, channels) uint8 image: random colours, size, position, rotation, pixel noise."""
    from PIL import Image, ImageDraw

    bg = tuple(int(v) for v in rng.randint(0, 90, 3))
    fg = tuple(int(v) for v in rng.randint(120, 256, 3))
    if rng.rand() < 0.5:  # light background, dark shape half of the time
        bg, fg = tuple(255 - v for v in bg), tuple(255 - v for v in fg)
    im = Image.new("RGB", (size, size), bg)
    r = size * rng.uniform(0.18, 0.34)
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    draw_shape(ImageDraw.Draw(im), kind, cx, cy, r, rng.uniform(0, 2 * math.pi), fg)
    a = np.asarray(im, dtype=np.float32)
    a = a + rng.normal(0, noise * 255, a.shape)
    a = np.clip(a, 0, 255).astype(np.uint8)
    return a.mean(2, keepdims=True).astype(np.uint8) if channels == 1 else a


def shape_options(name: str, num_classes, image_size, channels: int, min_classes: int, size: tuple[int, int]):
    """The generated-shapes datasets' common options, checked: (num_classes, image size).

    size is (default, minimum) image size; data.num_classes null means 4 classes.
    """
    num_classes = 4 if num_classes is None else num_classes
    image_size = image_size or size[0]
    if not min_classes <= num_classes <= len(SHAPES):
        raise ConfigError(f"data.num_classes for {name} must be between {min_classes} and {len(SHAPES)} (got {num_classes})")
    if image_size < size[1]:
        raise ConfigError(f"data.image_size for {name} must be >= {size[1]} (got {image_size})")
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {channels})")
    return num_classes, image_size


@DATASETS.register("shapes", kind="classification")
def shapes(seed, n_samples=500, noise=None, image_size=None, num_classes=None, channels=3):
    """Generated shapes (circle, square, triangle, star, ...) with random colour, size, position and noise."""
    num_classes, size = shape_options("shapes", num_classes, image_size, channels, 2, (32, 8))
    rng = np.random.RandomState(seed)
    y = rng.permutation(np.arange(n_samples) % num_classes)
    nz = 0.05 if noise is None else noise
    X = np.stack([render_shape(rng, SHAPES[k], size, channels, nz) for k in y])  # (N, H, W, C)
    return Images(torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y.astype(np.int64)),
                  list(SHAPES[:num_classes]))
