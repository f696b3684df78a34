"""plots/compare.png of `dlsem compare`, `sweep` and `zoo`: several runs' learning curves overlaid."""
from __future__ import annotations

from pathlib import Path

from .figure import pyplot, save


def compare(path: Path, runs: list[dict], monitor: str) -> None:
    """Learning curves of several runs overlaid, one colour per run: the monitored metric, and the
    validation (solid) and training (dashed) loss. runs: [{"label", "history": [row, ...], "status"}].
    The loss axis is scaled to the runs that did not diverge; a diverged run leaves it upwards,
    marked x where it stopped."""
    plt = pyplot()
    import math

    from matplotlib.ticker import MaxNLocator

    metric_panel = monitor not in ("val/loss", "train/loss")
    fig, axes = plt.subplots(1, 2 if metric_panel else 1, figsize=(13 if metric_panel else 7, 4.8), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    loss_ax = axes[0][-1]
    finite = lambda ys: [y for y in ys if isinstance(y, float) and math.isfinite(y) and y > 0]  # noqa: E731
    calm = []  # the losses of runs that did not diverge: they set the axis
    for i, r in enumerate(runs):
        color = cmap(i % cmap.N)
        label = r["label"] if r.get("status") in (None, "finished") else f"{r['label']} ({r['status']})"
        epochs = [row.get("epoch") for row in r["history"]]
        marker = "." if len(epochs) <= 30 else None
        if metric_panel:
            axes[0][0].plot(epochs, [row.get(monitor, math.nan) for row in r["history"]], color=color, label=label,
                            marker=marker)
        for key, ls in (("val/loss", "-"), ("train/loss", "--")):
            ys = [row.get(key, math.nan) for row in r["history"]]
            if r.get("status") != "diverged":
                calm += finite(ys)
            loss_ax.plot(epochs, ys, color=color, ls=ls, marker=marker,
                         label=label if not metric_panel and key == "val/loss" else None)
    if calm:
        lo, hi = min(calm), max(calm)
        if hi / lo > 50:
            loss_ax.set_yscale("log")
            loss_ax.set_ylim(lo / 1.5, hi * 3)
        else:
            loss_ax.set_ylim(max(0.0, lo - 0.1 * (hi - lo)), hi + 0.15 * (hi - lo) + 1e-12)
    top = loss_ax.get_ylim()[1]
    for i, r in enumerate(runs):
        if r.get("status") == "diverged" and r["history"]:
            loss_ax.plot([r["history"][-1].get("epoch", 0)], [top], marker="x", ms=10, mew=2, color=cmap(i % cmap.N),
                         clip_on=False)
    loss_ax.plot([], [], color="gray", ls="-", label="val/loss")
    loss_ax.plot([], [], color="gray", ls="--", label="train/loss")
    if any(r.get("status") == "diverged" for r in runs):
        loss_ax.plot([], [], color="gray", marker="x", ls="", label="diverged (off the chart)")
    loss_ax.set_title("loss")
    if metric_panel:
        axes[0][0].set_title(monitor)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save(fig, path)
