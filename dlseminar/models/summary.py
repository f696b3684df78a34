"""Layer-by-layer summary of a model (what `dlsem models show NAME --input 3x32x32` prints)."""
from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _shape(out) -> tuple[int, ...]:
    """Per-example shape of a leaf's output (the first tensor when it returns several)."""
    if isinstance(out, (tuple, list)):
        out = next((o for o in out if isinstance(o, torch.Tensor)), None)
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()


def layer_table(model: nn.Module, in_shape) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(layer name, layer type, output shape without the batch dim, parameters) per leaf-module call.

    Runs one zero input of batch 1 through the model in eval mode (train mode is restored
    after) with forward hooks on the leaf modules. A leaf called twice (a shared ReLU) gets
    a row per call, its parameters counted on the first only; leaves not called in eval mode
    (GoogLeNet's auxiliary heads) are not listed, so the column may sum to less than
    count_params(model).
    """
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    seen: set[str] = set()

    def hook_for(name: str):
        def hook(module, _inputs, out):
            params = 0 if name in seen else sum(p.numel() for p in module.parameters())
            seen.add(name)
            rows.append((name, type(module).__name__, _shape(out), params))

        return hook

    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook_for(n)) for n, m in leaves]
    param = next(model.parameters(), None)
    x = torch.zeros(1, *in_shape, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows
