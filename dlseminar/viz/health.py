"""plots/health.png (train.health): gradient norms by depth, dead ReLUs, near-zero weights, histograms;
plots/bn.png: the pre-activations' distribution over training, before and after batch norm."""
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


BN_LAYERS = 4  # layers drawn in plots/bn.png, spread from the first to the last


def batch_norm(path: Path, h: dict, summary: RunSummary | None = None) -> bool:
    """plots/bn.png: the distribution of the pre-activations of a few layers epoch by epoch, as bands of
    the health observer's quantiles (1-99 %, 5-95 %, 25-75 %, the median). With batch norm, one row before
    it and one after (the "unnormalised / normalised" slide); without, the raw pre-activations, which
    drift as the weights below them change. False (nothing drawn) when the summary has none."""
    layers, epochs = h.get("preact_layers") or [], h.get("epochs") or []
    if not layers or not epochs:
        return False
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    bn = bool(h.get("preact_batch_norm"))
    show = layers if len(layers) <= BN_LAYERS else [layers[round(i * (len(layers) - 1) / (BN_LAYERS - 1))]
                                                    for i in range(BN_LAYERS)]
    rows = [("preact_raw", "before batch norm" if bn else "pre-activation (no batch norm)")]
    if bn:
        rows.append(("preact_bn", "after batch norm"))
    fig, axes = plt.subplots(len(rows), len(show), figsize=(3.4 * len(show) + 0.6, 3.0 * len(rows) + 0.8),
                             squeeze=False)
    qs = h["preact_quantiles"]
    for r, (key, what) in enumerate(rows):
        for c, name in enumerate(show):
            ax = axes[r][c]
            series = [(e, q) for e, q in zip(epochs, h[key][name]) if q is not None]
            _bands(ax, [e for e, _ in series], [q for _, q in series], qs, legend=(r, c) == (0, 0))
            ax.axhline(0, color="k", lw=0.6)
            ax.set_title(f"{name}: {what}", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("pre-activation value")
    more = f" ({len(show)} of {len(layers)} layers)" if len(show) < len(layers) else ""
    title = (f"{summary.name or ''}: " if summary is not None else "") + (
        "pre-activations before and after batch norm" if bn else "pre-activations of a net without batch norm")
    fig.suptitle(f"{title}{more}\nquantiles over the {h.get('probe_samples', '?')} probe samples, all units, "
                 f"after each epoch (eval mode)", fontsize=10)
    fig.tight_layout()
    save(fig, path)
    return True


def _bands(ax, epochs: list, quantiles: list, qs: list, legend: bool) -> None:
    """Shaded bands between symmetric quantile pairs (outermost palest) and the median as a line."""
    if not epochs:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        return
    columns = list(zip(*quantiles))  # one list per quantile, over the epochs
    for i in range(len(qs) // 2):
        lo, hi = columns[i], columns[len(qs) - 1 - i]
        if len(epochs) == 1:  # a band needs two epochs: one epoch is a bar
            ax.vlines(epochs, lo, hi, color="tab:blue", alpha=0.15 + 0.2 * i, lw=8 + 6 * i)
            continue
        ax.fill_between(epochs, lo, hi, color="tab:blue", alpha=0.15 + 0.2 * i, lw=0,
                        label=f"{qs[i]:.0%}-{qs[len(qs) - 1 - i]:.0%}" if legend else None)
    if len(qs) % 2:
        ax.plot(epochs, columns[len(qs) // 2], color="tab:blue", lw=1.6, label="median" if legend else None)
    if legend:
        ax.legend(fontsize=7, loc="upper left")
