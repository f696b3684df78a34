"""Per-channel standardisation of images: fitted on the training split, or a checkpoint's, checked."""
from __future__ import annotations

import torch

from ..errors import DataError


def channel_stats(X: torch.Tensor | list[torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """Per-channel mean/std of X/scale in float64, (C, 1, 1). X is (N, C, H, W), summed in chunks
    of 4096 images, or a list of (C, H_i, W_i) images of any sizes; a constant channel keeps std 1."""
    chunks = X.split(4096) if isinstance(X, torch.Tensor) else [x.unsqueeze(0) for x in X]
    c = chunks[0].shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for chunk in chunks:
        v = chunk.double() / scale
        s1 += v.sum((0, 2, 3))
        s2 += v.pow(2).sum((0, 2, 3))
        n += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = s1 / n
    std = (s2 / n - mean ** 2).clamp(min=0).sqrt()
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
