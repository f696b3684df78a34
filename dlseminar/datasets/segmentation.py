"""Semantic-segmentation data kept in memory: images (N, C, H, W) uint8 and class masks (N, H, W) int64.

`shapes_seg` draws several shapes per image (the `shapes` classes, reusing images.draw_shape)
onto the image and, with the class index as the fill, onto the mask: class 0 is the
background, 1..num_classes the shapes; a later shape hides an earlier one in both. Masks may
hold 255 (= ignore) in datasets that mark unlabelled pixels; it is never a class.

The samples and their split are SegImages (tasks/segmentation/data.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..registry import DATASETS
from ..tasks.segmentation.data import SegImages
from .images import SHAPES, draw_shape, shape_options


def render_scene(rng: np.random.RandomState, kinds: list[int], size: int, channels: int, noise: float):
    """One image (size, size, channels) uint8 and its mask (size, size) uint8 with shapes kinds (0-based)."""
    from PIL import Image, ImageDraw

    bg = tuple(int(v) for v in rng.randint(0, 256, 3))
    im = Image.new("RGB", (size, size), bg)
    mask = Image.new("L", (size, size), 0)
    draw, mdraw = ImageDraw.Draw(im), ImageDraw.Draw(mask)
    for k in kinds:
        fg = tuple(int(v) for v in rng.randint(0, 256, 3))
        while sum(abs(a - b) for a, b in zip(fg, bg)) < 150:  # keep every shape visible on its background
            fg = tuple(int(v) for v in rng.randint(0, 256, 3))
        r = size * rng.uniform(0.1, 0.2)
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        rot = rng.uniform(0, 2 * math.pi)
        draw_shape(draw, SHAPES[k], cx, cy, r, rot, fg)
        draw_shape(mdraw, SHAPES[k], cx, cy, r, rot, int(k) + 1)  # the same geometry, the class as the fill
    a = np.asarray(im, dtype=np.float32)
    a = np.clip(a + rng.normal(0, noise * 255, a.shape), 0, 255).astype(np.uint8)
    if channels == 1:
        a = a.mean(2, keepdims=True).astype(np.uint8)
    return a, np.asarray(mask, dtype=np.uint8)


@DATASETS.register("shapes_seg", kind="segmentation")
def shapes_seg(seed, n_samples=500, noise=None, image_size=None, num_classes=None, channels=3, max_shapes=4):
    """Generated scenes of 1-4 shapes each and their class masks (background + data.num_classes shapes)."""
    num_classes, size = shape_options("shapes_seg", num_classes, image_size, channels, 1, (64, 16))
    rng = np.random.RandomState(seed)
    nz = 0.05 if noise is None else noise
    X, M = [], []
    for _ in range(n_samples):
        kinds = list(rng.randint(0, num_classes, rng.randint(1, max_shapes + 1)))
        a, m = render_scene(rng, kinds, size, channels, nz)
        X.append(a)
        M.append(m)
    X_t = torch.from_numpy(np.stack(X)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    masks = torch.from_numpy(np.stack(M).astype(np.int64))  # (N, H, W)
    return SegImages(X_t, masks, ["background", *SHAPES[:num_classes]])
