"""Segmentation's plots: image | true mask | predicted mask rows with a legend, and the colour overlay
`dlsem predict` writes."""
from __future__ import annotations

from pathlib import Path

import torch

from ...viz.figure import pyplot, save
from ...viz.images import IGNORE_RGB, rgb_uint8

LEGEND_CLASSES = 24  # most classes a segmentation legend lists (the largest areas first)


def paint(mask, colors):
    """(H, W, 3) uint8: each pixel of mask (H, W) in its class colour; ignored pixels (255) neutral grey."""
    import numpy as np

    m = np.asarray(mask, dtype=np.int64)
    ignore = m >= len(colors)  # 255
    out = np.asarray(colors, dtype=np.uint8)[np.where(ignore, 0, m)]
    out[ignore] = IGNORE_RGB
    return out


def overlay(image, mask, colors, alpha: float = 0.5):
    """(H, W, 3) uint8 image blended with the class colours of mask (H, W); ignored pixels neutral grey."""
    import numpy as np

    m = np.asarray(mask, dtype=np.int64)
    out = (1 - alpha) * image.astype(np.float32) + alpha * paint(m, colors).astype(np.float32)
    out[m >= len(colors)] = IGNORE_RGB
    return out.round().clip(0, 255).astype(np.uint8)


def predictions(path: Path, X: torch.Tensor, masks: torch.Tensor, preds: torch.Tensor, names: list[str], colors,
                    scale: float, split: str) -> None:
    """Rows of image | true mask | predicted mask, with a legend of the class colours.

    The masks are painted in exactly the legend's colours: blended over the image (as `dlsem predict`'s
    overlay is) a class's colour would change with the image under it, and no longer match its patch."""
    from matplotlib.patches import Patch

    plt = pyplot()
    shown = set(masks.unique().tolist()) | set(preds.unique().tolist())
    keep = list(range(len(names))) if len(names) <= LEGEND_CLASSES else sorted(c for c in shown if c < len(names))
    more = 0
    if len(keep) > LEGEND_CLASSES:  # many classes in view: the legend lists the largest areas, counts the rest
        area = torch.bincount(torch.cat([masks.flatten(), preds.flatten()]).long(), minlength=256)
        more = len(keep) - LEGEND_CLASSES
        keep = sorted(sorted(keep, key=lambda c: -int(area[c]))[:LEGEND_CLASSES])
    handles = [Patch(color=colors[c] / 255, label=names[c]) for c in keep]
    if more:
        handles.append(Patch(color="none", label=f"+ {more} more classes"))
    if 255 in shown:
        handles.append(Patch(color=tuple(v / 255 for v in IGNORE_RGB), label="ignore (255)"))
    n, cols = len(X), max(1, min(len(handles), 6))
    legend_h = 0.15 + 0.22 * -(-len(handles) // cols)  # inches: one line per 6 classes
    height = 2.3 * n + 0.3 + legend_h
    fig, axes = plt.subplots(n, 3, figsize=(7.5, height), squeeze=False)
    for i in range(n):
        img = rgb_uint8(X[i], scale)
        valid = masks[i] != 255
        acc = float((preds[i][valid] == masks[i][valid]).float().mean()) if valid.any() else float("nan")
        panels = [(img, "image"), (paint(masks[i].numpy(), colors), "true mask"),
                  (paint(preds[i].numpy(), colors), f"predicted (pixel acc {acc:.2f})")]
        for ax, (a, title) in zip(axes[i], panels):
            ax.imshow(a, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.legend(handles=handles, loc="lower center", ncol=cols, fontsize=7, frameon=False)
    fig.suptitle(f"predictions on {split} images", fontsize=9)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    save(fig, path)
