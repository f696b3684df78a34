"""Per-channel standardisation of images: fitted on the training split, or a checkpoint's, checked.

Images of integers (uint8) are summed exactly, as int64 sums of values and of squares: the totals
do not depend on the order or grouping of the images, so a split streamed from its files (whose
per-image sums data/files.py gathers while reading them) gets bit for bit the statistics of the
same split decoded in memory.
"""
from __future__ import annotations

import torch

from ..errors import DataError

CHUNK = 256  # images summed at a time: 256 x 3x224x224 as int32 is about 150 MB


def image_sums(x: torch.Tensor) -> list[list[int]]:
    """[[sum of values], [sum of squares]] per channel of one integer image (C, H, W), as Python ints: what a
    scan keeps per image (one tiny tensor kept per image would be carved out of the freed image-sized
    temporaries of the C heap, which then grows by about two images a file: 800 MB for 8,000 64x64 images)."""
    return batch_sums(x.unsqueeze(0)).tolist()


def batch_sums(x: torch.Tensor) -> torch.Tensor:
    """(2, C) int64 sums (values, squares) over a batch of integer images (B, C, H, W); exact."""
    v = x.to(torch.int32)  # 255**2 fits; the sums are taken in int64
    return torch.stack([v.sum((0, 2, 3), dtype=torch.int64), (v * v).sum((0, 2, 3), dtype=torch.int64)])


def channel_stats(X, scale: float) -> dict[str, torch.Tensor]:
    """Per-channel mean/std of X/scale in float64, (C, 1, 1). X is (N, C, H, W), a list of (C, H_i, W_i)
    images of any sizes, or streamed Files (their per-image sums); a constant channel keeps std 1."""
    if hasattr(X, "pixel_sums"):  # streamed Files: the sums gathered while their files were read
        return from_sums(*X.pixel_sums(), scale)
    images = X.split(CHUNK) if isinstance(X, torch.Tensor) else [x.unsqueeze(0) for x in X]
    if not images[0].dtype.is_floating_point:
        total = sum(batch_sums(b) for b in images)
        return from_sums(total, sum(b.shape[0] * b.shape[2] * b.shape[3] for b in images), scale)
    c = images[0].shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for chunk in images:
        v = chunk.double() / scale
        s1 += v.sum((0, 2, 3))
        s2 += v.pow(2).sum((0, 2, 3))
        n += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    return _finish(s1 / n, s2 / n, scale)


def from_sums(total: torch.Tensor, pixels: int, scale: float) -> dict[str, torch.Tensor]:
    """Stats from exact (2, C) int64 sums over `pixels` pixels a channel."""
    t = total.double()
    return _finish(t[0] / pixels / scale, t[1] / pixels / (scale * scale), scale)


def _finish(mean: torch.Tensor, square: torch.Tensor, scale: float) -> dict[str, torch.Tensor]:
    c = len(mean)
    std = (square - mean ** 2).clamp(min=0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return {"mean": mean.view(c, 1, 1), "std": std.view(c, 1, 1), "scale": torch.tensor(float(scale))}


def fit_stats(name: str, in_shape, train_X, scale: float, standardize: bool, stats: dict | None) -> dict:
    """A checkpoint's per-channel stats (checked against the data), or new ones from the training split."""
    if stats:
        if "mean" in stats and tuple(stats["mean"].shape) != (in_shape[0], 1, 1):  # none with standardize: false
            raise DataError(f"dataset {name!r} has {in_shape[0]} channels but the checkpoint was trained on "
                            f"{stats['mean'].shape[0]}")
        return dict(stats)
    if standardize:
        return channel_stats(train_X, scale)
    return {"scale": torch.tensor(float(scale))}
