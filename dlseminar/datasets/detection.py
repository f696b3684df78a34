"""`shapes_det`: generated detection scenes (offline), as DetImages (tasks/detection/data.py).

`coco` and `voc_det` read files (coco.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import DATASETS
from ..tasks.detection.data import DetImages, target
from .images import SHAPES, draw_shape, shape_options

# --------------------------------------------------------------------------- shapes_det


def render_det_scene(rng: np.random.RandomState, kinds, size: int, channels: int, noise: float):
    """One image (size, size, channels) uint8 with the shapes `kinds` (0-based) at random places.

    Each box is the tight pixel box of the shape as drawn ([x1, y1, x2, y2], x2/y2 exclusive),
    read back from a mask of that shape alone. A shape whose box would touch another's is
    placed again (up to 30 tries, then left out), so no shape hides part of another.
    """
    from PIL import Image, ImageDraw

    bg = tuple(int(v) for v in rng.randint(0, 256, 3))
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    boxes, labels = [], []
    for k in kinds:
        fg = tuple(int(v) for v in rng.randint(0, 256, 3))
        while sum(abs(a - b) for a, b in zip(fg, bg)) < 150:  # keep every shape visible on its background
            fg = tuple(int(v) for v in rng.randint(0, 256, 3))
        for _ in range(30):
            r = size * rng.uniform(0.07, 0.2)
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            rot = rng.uniform(0, 2 * math.pi)
            mask = Image.new("L", (size, size), 0)
            draw_shape(ImageDraw.Draw(mask), SHAPES[k], cx, cy, r, rot, 255)
            box = mask.getbbox()  # (x1, y1, x2, y2), x2/y2 exclusive; None if nothing was drawn
            if box is None or any(_touch(box, b) for b in boxes):
                continue
            draw_shape(draw, SHAPES[k], cx, cy, r, rot, fg)
            boxes.append(box)
            labels.append(int(k) + 1)
            break
    a = np.asarray(im, dtype=np.float32)
    a = np.clip(a + rng.normal(0, noise * 255, a.shape), 0, 255).astype(np.uint8)
    if channels == 1:
        a = a.mean(2, keepdims=True).astype(np.uint8)
    return a, target(boxes, labels)


def _touch(a, b, margin: int = 2) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


@DATASETS.register("shapes_det", kind="detection")
def shapes_det(seed, n_samples=500, noise=None, image_size=None, num_classes=None, channels=3, max_shapes=4):
    """Generated scenes of 0-data.max_shapes shapes each, with their boxes and classes (offline detection)."""
    num_classes, size = shape_options("shapes_det", num_classes, image_size, channels, 1, (128, 32))
    if max_shapes < 1:
        raise ConfigError(f"data.max_shapes must be >= 1 (got {max_shapes})")
    rng = np.random.RandomState(seed)
    nz = 0.05 if noise is None else noise
    X, targets = [], []
    for _ in range(n_samples):
        kinds = rng.randint(0, num_classes, rng.randint(0, max_shapes + 1))  # 0 shapes: a negative image
        a, t = render_det_scene(rng, kinds, size, channels, nz)
        X.append(a)
        targets.append(t)
    X_t = torch.from_numpy(np.stack(X)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return DetImages(X_t, targets, list(SHAPES[:num_classes]))
