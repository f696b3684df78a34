"""plots/curves.png: a run's loss, its task's main metric and its monitored metric per epoch, its best epoch
and early stop."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .figure import pyplot, save

if TYPE_CHECKING:
    from ..summary import RunSummary


def main_metric(task: str | None) -> str | None:
    """The metric the registered Task named `task` declares as its monitor ("val/acc" for classification),
    None for a task not registered here (a summary from elsewhere)."""
    if not isinstance(task, str):
        return None
    from ..catalog import load_all
    from ..registry import TASKS

    load_all()
    return TASKS.get(task).fn.monitor if task in TASKS else None


def panels(history: list[dict], summary: RunSummary) -> list[tuple[str, list[str]]]:
    """curves.png's panels as (title, metrics): the losses, then the task's main metric (whatever the run
    monitored: a classifier stopped on val/loss still shows its accuracy), then the monitor when it is
    another metric. A metric the history does not hold has no panel."""
    monitor = summary.monitor or "val/loss"
    parts = [k for k in (history[0] if history else {}) if k.startswith("train/") and k != "train/loss"]
    out = [("loss", ["train/loss", "val/loss", *parts])]  # parts: Task.train_logs(), e.g. a detector's losses
    recorded = {k for r in history for k in r}
    for metric in dict.fromkeys([main_metric(summary.task), monitor]):
        if metric and metric != "val/loss" and metric in recorded:
            out.append((metric.split("/")[-1], [metric]))
    return out


def curves(path: Path, history: list[dict], summary: RunSummary) -> None:
    """Loss (train and val), the task's main metric and the monitored metric per epoch. The best epoch is
    marked (a star on the monitored curve, "restored" when the run ends with its weights); when early
    stopping ended the run, the patience window (best epoch to the stop) is shaded."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    monitor = summary.monitor or "val/loss"
    shown = panels(history, summary)
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], shown):
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.25
        ax.set_title(title + (" (monitored)" if monitor in keys and title != "loss" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary.name or ''}: {summary.model or ''} on {summary.dataset or ''}", fontsize=10)
    fig.tight_layout()
    save(fig, path)
