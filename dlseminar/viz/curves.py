"""plots/curves.png: a run's loss and monitored metric per epoch, its best epoch and early stop."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .figure import pyplot, save

if TYPE_CHECKING:
    from ..summary import RunSummary


def curves(path: Path, history: list[dict], summary: RunSummary) -> None:
    """Loss (train and val) and the monitored metric per epoch. The best epoch is marked (a star on the
    monitored curve, "restored" when the run ends with its weights); when early stopping ended the
    run, the patience window (best epoch to the stop) is shaded."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    monitor = summary.monitor or "val/loss"
    parts = [k for k in (history[0] if history else {}) if k.startswith("train/") and k != "train/loss"]
    panels = [("loss", ["train/loss", "val/loss", *parts])]  # parts: Task.train_logs(), e.g. a detector's losses
    if monitor != "val/loss":
        panels.append((monitor.split("/")[-1], [monitor]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for k in [k for k in keys if any(k in r for r in history)]:  # e.g. no val/loss for a detector
            ax.plot(epochs, [r.get(k, float("nan")) for r in history], label=k, marker="." if len(epochs) < 40 else None)
        best = summary.best_epoch
        if best:
            restored = " (restored)" if summary.restored_best else ""
            ax.axvline(best, color="green", ls="--", lw=1, label=f"best epoch {best}{restored}")
            if monitor in keys:  # the restored weights' score, on the monitored curve
                row = next((r for r in history if r["epoch"] == best), {})
                if monitor in row:
                    ax.plot([best], [row[monitor]], marker="*", ms=13, color="green", mec="k", ls="none", zorder=5)
        if summary.stopped_early and epochs:
            if best and summary.patience and epochs[-1] > best:
                # the epochs early stopping waited for an improvement that did not come
                ax.axvspan(best, epochs[-1], color="orange", alpha=0.15,
                           label=f"patience: {epochs[-1] - best} epochs without improvement")
            ax.axvline(epochs[-1], color="red", ls=":", lw=1, label="stopped")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary.name or ''}: {summary.model or ''} on {summary.dataset or ''}", fontsize=10)
    fig.tight_layout()
    save(fig, path)
