"""Grad-CAM (Selvaraju et al. 2017): where in the input a classifier looked for a class.

For the class score y_c (the logit, before softmax) and the feature maps A (B, K, h, w) that the
classifier's head reads, the gradients dy_c/dA are averaged over the map (a global average pool)
into one weight per channel, alpha_k; the map ReLU(sum_k alpha_k A_k) (B, h, w) is upsampled to the
input's size and scaled to [0, 1] per image.

Which feature maps: the last *spatial* map (more than 1x1) that the forward pass makes, skipping
the output of a pooling layer. Hooking "the last nn.Conv2d in module order" is wrong for two of the
zoo: GoogLeNet's last Conv2d is one branch of inception5b (128 of its 1024 concatenated channels),
and ResNet's is the second conv of the last block, before its batch norm and before the skip is
added. The map that feeds the global pool is the right one for both, and forward hooks find it
without knowing the architecture: they fire in execution order, and a container's output is the
very tensor its last child made, so each distinct output tensor is kept once, named by the
outermost module that returned it (ResNet: `layer4`, GoogLeNet: `inception5b`). Pools are
skipped because their map is a coarser copy of the one before (the paper's VGG-16 uses the last
conv's ReLU at 14x14, not the pool after it at 7x7); a model whose only spatial maps are pools'
outputs uses the last of them. The gradient is taken with torch.autograd.grad on that tensor, so
in-place ReLUs and additions (ResNet's `out += identity`) are seen as they ended up.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .figure import pyplot, save
from .images import as_image

POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _forward_with_maps(model: nn.Module, x: torch.Tensor):
    """model(x) and the feature maps it made: [(name, tensor, made by a pool, module type)] in the order
    they were first returned, one entry per distinct 4-D tensor larger than 1x1."""
    seen: dict[int, list] = {}  # id(tensor) -> [name, tensor, first producer is a pool, module type]

    def hook(name):
        def record(module, _inputs, out):
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-2] * out.shape[-1] > 1:
                entry = seen.setdefault(id(out), [name, out, isinstance(module, POOLS), ""])
                entry[0], entry[3] = name, type(module).__name__  # a container returning its child's map: the outer

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, [tuple(e) for e in seen.values()]


def _target_map(maps) -> tuple[str, torch.Tensor]:
    if not maps:
        raise UserError("Grad-CAM needs a feature map larger than 1x1; this model's input is too small for one")
    name, a, _, kind = next((m for m in reversed(maps) if not m[2]), maps[-1])
    return f"{name} ({kind}, {'x'.join(map(str, a.shape[1:]))})", a


def class_scores(out: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Each example's score (logit) for its class: out[i, c]; a one-logit binary model scores class 1 as z
    and class 0 as -z (sigma(-z) is its probability)."""
    if out.shape[1] == 1:
        return torch.where(classes == 1, out[:, 0], -out[:, 0])
    return out.gather(1, classes[:, None])[:, 0]


def grad_cam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Grad-CAM of a classifier for a normalised batch x (B, C, H, W) and one class per example (B,):
    heatmaps (B, H, W) in [0, 1] on the CPU, and the feature map they come from: its module's name,
    type and shape, e.g. "layer4 (Sequential, 512x4x4)".

    The model is put in eval mode (batch norm's running statistics: each example on its own)."""
    model.eval()
    with torch.enable_grad():
        out, maps = _forward_with_maps(model, x)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise UserError("Grad-CAM takes a classifier (one score per class and image)")
        name, a = _target_map(maps)  # (B, K, h, w)
        scores = class_scores(out, classes.to(out.device))
        grads, = torch.autograd.grad(scores.sum(), a)  # examples are independent in eval mode
    weights = grads.mean((2, 3), keepdim=True)  # alpha_k: (B, K, 1, 1)
    cam = F.relu((weights * a.detach()).sum(1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    top = cam.flatten(1).amax(1)[:, None, None]  # a map that is 0 everywhere (no evidence) stays 0
    return torch.where(top > 0, cam / top.clamp(min=torch.finfo(cam.dtype).tiny), 0.0).clamp(0, 1).cpu(), name


def overlay(path: Path, image: torch.Tensor, heat: torch.Tensor, title: str, scale: float = 255.0) -> None:
    """The raw input image (C, H, W) beside it with the heatmap (H, W) in [0, 1] over it."""
    plt = pyplot()
    picture = as_image(image, scale)
    fig, (left, right) = plt.subplots(1, 2, figsize=(6.2, 3.4))
    for ax in (left, right):
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
    shown = right.imshow(heat.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    fig.colorbar(shown, ax=right, fraction=0.046, pad=0.03)
    left.set_title("input", fontsize=8)
    right.set_title("Grad-CAM", fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    save(fig, path)
