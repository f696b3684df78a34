"""`dlsem predict --features`: the feature maps of a few conv layers for one input."""
from __future__ import annotations

from pathlib import Path

import torch

from .figure import pyplot, save


def feature_maps(folder: Path, model, x: torch.Tensor, max_layers: int = 4, max_maps: int = 16) -> list[str]:
    """Feature maps of the first few conv layers for one normalised input (1, C, H, W):
    the lesson's low-, mid- and high-level features."""
    plt = pyplot()
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        return []
    step = max(1, len(convs) // max_layers)
    chosen = convs[::step][:max_layers]
    acts: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: acts.__setitem__(n, o.detach().cpu())) for n, m in chosen]
    model.eval()
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    written = []
    for n, conv in chosen:
        a = acts[n][0][:max_maps]  # (maps, h, w)
        cols = min(8, len(a))
        rows = (len(a) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.3 * rows + 0.5), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for f, (ax, fm) in enumerate(zip(axes.flat, a)):
            ax.imshow(fm.numpy(), cmap="viridis", interpolation="nearest")
            ax.set_title(f"{n} #{f}", fontsize=6)  # the layer's name in the model, and the filter
        k = "x".join(map(str, conv.kernel_size))
        fig.suptitle(f"layer {n} (Conv2d {conv.in_channels}->{conv.out_channels}, {k}): output "
                     f"{'x'.join(map(str, acts[n].shape[1:]))}, first {len(a)} maps", fontsize=8)
        fig.tight_layout()
        name = f"features_{n.replace('.', '_') or 'conv'}.png"
        save(fig, folder / name)
        written.append(name)
    return written
