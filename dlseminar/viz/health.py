"""plots/health.png (train.health): gradient norms by depth, dead ReLUs, near-zero weights, histograms."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .figure import pyplot, save

if TYPE_CHECKING:
    from ..summary import RunSummary


def health(path: Path, h: dict, summary: RunSummary | None = None) -> None:
    """Training health (health.py): gradient norm by layer depth, dead ReLU units, near-zero weights,
    weight histograms of the last epoch."""
    plt = pyplot()
    import math

    from matplotlib.ticker import MaxNLocator

    layers, epochs = h["layers"], h["epochs"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]  # the vanishing-gradient picture: norm against depth, a few epochs
    picks = sorted({0, len(epochs) // 2, len(epochs) - 1}) if epochs else []
    for j in picks:
        ys = [h["grad_norm"][n][j] for n in layers]
        ax.plot(range(1, len(layers) + 1), ys, marker="o", label=f"epoch {epochs[j]}")
    ax.set_yscale("log")
    ax.set_xlabel("layer (input → output)")
    ax.set_title("gradient norm per weight matrix (mean over the epoch's steps)")
    if h.get("first_to_last_grad"):
        r = h["first_to_last_grad"][0]
        ax.text(0.02, 0.03, f"epoch {epochs[0]}: first / last layer = {r:.2g}", transform=ax.transAxes, fontsize=8)
    if len(layers) <= 16:
        ax.set_xticks(range(1, len(layers) + 1), [n.removesuffix(".weight") for n in layers], rotation=45,
                      ha="right", fontsize=7)
    ax = axes[0][1]
    if h["relu_layers"]:
        for n in h["relu_layers"]:
            ax.plot(epochs, h["dead_relu"][n], label=n)
        ax.set_ylim(-0.02, 1.02)
    else:
        ax.text(0.5, 0.5, "no ReLU layers", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"dead ReLU units (0 for all {h['probe_samples']} probe samples)")
    ax = axes[1][0]
    ax.plot(epochs, h["near_zero_all"], color="k", lw=2, label="all weights")
    for n in layers if len(layers) <= 12 else []:
        ax.plot(epochs, h["near_zero"][n], lw=0.8, label=n.removesuffix(".weight"))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"share of near-zero weights (|w| < {h['threshold']:g})")
    ax = axes[1][1]
    show = layers if len(layers) <= 6 else [layers[round(i * (len(layers) - 1) / 5)] for i in range(6)]
    for n in show:
        last = h["weight_hist"][n][-1] if h["weight_hist"][n] else None
        if not last or not last["max"] or not math.isfinite(last["max"]):
            continue
        k = len(last["counts"])
        edges = [-last["max"] + 2 * last["max"] * i / k for i in range(k + 1)]
        total = sum(last["counts"]) or 1
        ax.stairs([c / total for c in last["counts"]], edges, label=n.removesuffix(".weight"))
    ax.set_yscale("log")
    ax.set_xlabel("weight value")
    ax.set_title(f"weight histograms, epoch {epochs[-1] if epochs else '-'}")
    for a in axes.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    if summary is not None:
        fig.suptitle(f"{summary.name or ''}: training health", fontsize=10)
    fig.tight_layout()
    save(fig, path)
