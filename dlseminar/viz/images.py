"""Image tensors as arrays for drawing, and the class colours of masks and boxes."""
from __future__ import annotations

import torch

IGNORE_RGB = (200, 200, 200)  # pixels without a label (mask value 255): a neutral light grey


def as_image(x: torch.Tensor, scale: float):
    """(C, H, W) raw tensor -> (H, W[, 3]) float array in [0, 1] for imshow."""
    v = (x.float() / scale).clamp(0, 1)
    return v[0].numpy() if v.shape[0] == 1 else v[:3].permute(1, 2, 0).numpy()


def rgb_uint8(x: torch.Tensor, scale: float = 255.0):
    """(C, H, W) raw image tensor -> (H, W, 3) uint8 array (grayscale repeated)."""
    v = (x.float() / scale * 255).round().clamp(0, 255).to(torch.uint8)
    v = v[:1].expand(3, -1, -1) if v.shape[0] == 1 else v[:3]
    return v.permute(1, 2, 0).numpy()


def class_colors(k: int, palette: torch.Tensor | None = None):
    """(k, 3) uint8 colours: the dataset's palette when it has one, else black background and tab20,
    its ten strong colours first and their pale partners after (neighbouring classes in distinct hues)."""
    import numpy as np

    if palette is not None and len(palette) >= k:
        return np.asarray(palette[:k], dtype=np.uint8)
    from .figure import matplotlib_agg

    tab = (np.asarray(matplotlib_agg().colormaps["tab20"].colors) * 255).round().astype(np.uint8)
    tab = np.concatenate([tab[0::2], tab[1::2]])  # tab20 pairs a colour with its pale shade: keep them apart
    out = np.zeros((k, 3), dtype=np.uint8)
    for i in range(1, k):
        out[i] = tab[(i - 1) % len(tab)]
    return out
