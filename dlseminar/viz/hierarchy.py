"""The feature hierarchy (Zeiler & Fergus 2014): for a few filters of an early, a middle and a late conv
layer, the training-image patches that excite each filter most, labelled low-, mid- and high-level.

A filter's response to an image is its largest activation over the map; the patch is the part of the
input that this activation sees (its receptive field) around where it peaked. The receptive field
is measured, not derived from kernel sizes (that goes wrong on ResNet's skips and GoogLeNet's
parallel branches): the input pixels with a non-zero gradient for the centre unit of the layer's
map, over a batch of random inputs (a max-pool or a ReLU hides some pixels from one input's gradient,
not from all of them; real images can leave a unit dead everywhere: digits on black). A unit at
row i of an h-row map of an H-row input is centred on input row (i + 1/2) H / h - 1/2; where its
field reaches past the image's edge the tile is hatched, so that every patch of a layer is drawn
at the same scale and a patch at the border shows as one.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..data.files import Files
from .figure import pyplot, save
from .images import as_image

LEVELS = ("low-level", "mid-level", "high-level")
RF_INPUTS = 16  # random inputs whose gradient supports are united into a layer's receptive field


def chosen_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(level, layer name) for the first, the middle and the last conv layer (module order), preferring
    convs with a kernel larger than 1x1: a 1x1 conv mixes channels and adds nothing to see."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    wide = [n for n, m in convs if max(m.kernel_size) > 1] or [n for n, _ in convs]
    if len(wide) < 3:
        return list(zip((LEVELS[0], LEVELS[2]) if len(wide) == 2 else LEVELS[:1], wide))
    return list(zip(LEVELS, (wide[0], wide[len(wide) // 2], wide[-1])))


def peaks(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image's strongest activation per filter of maps (B, K, h, w): values, rows and columns (B, K)."""
    values, flat = maps.flatten(2).max(2)
    return values, flat // maps.shape[-1], flat % maps.shape[-1]


def crop_box(row: int, col: int, in_hw: tuple[int, int], out_hw: tuple[int, int],
             rf_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive, of the receptive field (rf_hw pixels) of the unit
    at (row, col) of an out_hw map of an in_hw input; it may reach past the image's edges."""
    box = []
    for i, n_in, n_out, r in ((row, in_hw[0], out_hw[0], rf_hw[0]), (col, in_hw[1], out_hw[1], rf_hw[1])):
        centre = (i + 0.5) * n_in / n_out - 0.5
        box.append(math.floor(centre - (r - 1) / 2 + 0.5))
    return box[0], box[1], box[0] + rf_hw[0], box[1] + rf_hw[1]


def cut(image: torch.Tensor, box: tuple[int, int, int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """The part of the box inside image (C, H, W), and where it starts within the box (row, column)."""
    top, left, bottom, right = box
    h, w = image.shape[-2:]
    t, l, b, r = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    return image[:, t:max(b, t), l:max(r, l)], (t - top, l - left)


def receptive_field(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(height, width) of the input region that the centre unit of `layer`'s map depends on, over the
    inputs x (B, C, H, W): the bounding box of the pixels with a non-zero gradient."""
    x = x.detach().clone().requires_grad_(True)
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.enable_grad():
            model(x)
            a = seen[0]  # (B, K, h, w)
            grad, = torch.autograd.grad(a[:, :, a.shape[-2] // 2, a.shape[-1] // 2].sum(), x)
    finally:
        handle.remove()
    hit = grad.abs().sum((0, 1)) > 0  # (H, W)
    rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
    if len(rows) == 0:  # a dead unit on every image: fall back to the whole input
        return tuple(x.shape[-2:])
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _strongest(model, layers: dict[str, nn.Module], X: torch.Tensor, transform, device, batch: int = 256):
    """Per layer: each image's peak per filter over X (values, rows, cols: (N, K)) and the map's (h, w)."""
    found: dict[str, list] = {n: [] for n in layers}
    shapes: dict[str, tuple[int, int]] = {}
    current: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: current.__setitem__(n, out)) for n, m in layers.items()]
    try:
        with torch.inference_mode():
            for xb in X.split(batch):
                model(transform(xb.to(device)))
                for n, maps in current.items():
                    shapes[n] = tuple(maps.shape[-2:])
                    found[n].append([t.cpu() for t in peaks(maps.float())])
    finally:
        for h in hooks:
            h.remove()
    return {n: ([torch.cat(p) for p in zip(*parts)], shapes[n]) for n, parts in found.items()}


def hierarchy(path: Path, model: nn.Module, data, device, filters: int = 4, top_k: int = 6,
              limit: int = 5000) -> bool:
    """Write the feature-hierarchy figure to `path` (see patches); False, with nothing written, when the
    model has no conv layer or the training inputs are not a tensor of images."""
    rows = patches(model, data, device, filters, top_k, limit)
    if not rows:
        return False
    X = data.splits["train"][0]
    _draw(path, rows, max(len(r[4]) for r in rows), tuple(X.shape[-2:]))
    return True


def patches(model: nn.Module, data, device, filters: int = 4, top_k: int = 6, limit: int = 5000) -> list[tuple]:
    """Per chosen layer (chosen_layers), the `filters` filters whose top_k peaks over the first `limit`
    training images are the strongest on average, each as (level, layer, filter, receptive field (h, w),
    [(patch (C, h, w) in [0, 1], where it starts within the field)] best first); [] when there is no
    conv layer or the training inputs are not a tensor of images."""
    X = data.splits["train"][0]
    if isinstance(X, Files):  # a streamed set: decode only the images looked at
        X = X[:limit]
    chosen = chosen_layers(model)
    if not isinstance(X, torch.Tensor) or X.dim() != 4 or not chosen:  # e.g. a detector's list of images
        return []
    X = X[:limit]
    modules = dict(model.named_modules())
    transform = data.transform(device) or (lambda t: t.float())
    model.eval()
    found = _strongest(model, {n: modules[n] for _, n in chosen}, X, transform, device)
    noise = torch.randn(RF_INPUTS, *X.shape[1:], generator=torch.Generator().manual_seed(0)).to(device)
    scale = float(data.stats.get("scale", torch.tensor(255.0)))
    rows = []
    for level, name in chosen:
        (values, r, c), out_hw = found[name]
        rf = receptive_field(model, modules[name], noise)
        best = values.topk(min(top_k, len(X)), 0)  # (k, K): the images that excite each filter most
        for f in best.values.mean(0).topk(min(filters, values.shape[1])).indices.tolist():
            crops = [cut(X[i].float() / scale, crop_box(int(r[i, f]), int(c[i, f]), X.shape[-2:], out_hw, rf))
                     for i in best.indices[:, f].tolist()]
            rows.append((level, name, f, rf, crops))
    return rows


def _draw(path: Path, rows, cols: int, image_hw) -> None:
    plt = pyplot()
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(rows), cols, figsize=(1.0 * cols + 2.2, 1.0 * len(rows) + 0.6), squeeze=False)
    colours = dict(zip(LEVELS, ("tab:blue", "tab:orange", "tab:red")))
    for ax_row, (level, name, f, rf, crops) in zip(axes, rows):
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(0, rf[1])
            ax.set_ylim(rf[0], 0)
            for s in ax.spines.values():
                s.set_visible(False)
        for ax, (p, (dy, dx)) in zip(ax_row, crops):
            ax.add_patch(Rectangle((0, 0), rf[1], rf[0], facecolor="none", edgecolor="0.6", hatch="////", lw=0,
                                   zorder=0))  # under the image: shows only where the field leaves it
            ax.imshow(as_image(p, 1.0), cmap="gray", vmin=0, vmax=1, interpolation="nearest", zorder=1,
                      extent=(dx, dx + p.shape[-1], dy + p.shape[-2], dy))
        ax_row[0].set_ylabel(f"{level}\nlayer {name}, filter {f}\nfield {rf[0]}x{rf[1]} px", rotation=0, ha="right",
                             va="center", fontsize=7, color=colours[level])
    fig.suptitle(f"feature hierarchy: the {cols} training patches ({image_hw[0]}x{image_hw[1]} images) that excite "
                 f"each filter most; hatched: outside the image", fontsize=9)
    fig.tight_layout()
    save(fig, path)
