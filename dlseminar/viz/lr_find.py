"""lr_find.png of `dlsem lr-find`: the loss against the learning rate, the suggestion marked."""
from __future__ import annotations

from pathlib import Path

from .figure import pyplot, save


def lr_find(path: Path, lrs: list[float], smoothed: list[float], raw: list[float], suggestion: float | None,
            rule: str, others: dict[str, float] | None = None) -> None:
    """The learning-rate range test: loss against the learning rate (log x), the suggestion marked."""
    plt = pyplot()
    import math

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, raw, color="lightgray", lw=0.8, label="loss per step")
    ax.plot(lrs, smoothed, color="C0", lw=1.8, label="smoothed loss")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        lo, first = min(finite), finite[0]
        ax.set_ylim(lo - 0.1 * abs(first - lo) - 1e-3, max(first, lo) + 0.6 * abs(first - lo) + 1e-3)
    for i, (name, lr) in enumerate((others or {}).items()):
        ax.axvline(lr, color=f"C{i + 2}", ls=":", lw=1, label=f"{name}: {lr:.2g}")
    if suggestion is not None:
        ax.axvline(suggestion, color="C3", ls="--", lw=1.5, label=f"suggested lr {suggestion:.2g} ({rule})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
