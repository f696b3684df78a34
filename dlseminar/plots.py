"""Plots written into a run's plots/ folder (matplotlib, headless Agg backend)."""
from __future__ import annotations

from pathlib import Path

import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(path: Path, history: list[dict], summary: dict) -> None:
    """Loss (train and val) and the monitored metric per epoch; best epoch and stop marked."""
    plt = _plt()
    epochs = [r["epoch"] for r in history]
    monitor = summary.get("monitor", "val/loss")
    panels = [("loss", ["train/loss", "val/loss"])]
    if monitor != "val/loss":
        panels.append((monitor.split("/")[-1], [monitor]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for k in keys:
            ax.plot(epochs, [r.get(k, float("nan")) for r in history], label=k, marker="." if len(epochs) < 40 else None)
        if summary.get("best_epoch"):
            ax.axvline(summary["best_epoch"], color="green", ls="--", lw=1, label=f"best epoch {summary['best_epoch']}")
        if summary.get("stopped_early") and epochs:
            ax.axvline(epochs[-1], color="red", ls=":", lw=1, label="stopped")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary.get('name', '')}: {summary.get('model', '')} on {summary.get('dataset', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def decision_boundary(path: Path, model, task, data, device, steps: int = 200) -> None:
    """Predicted class over the 2-D input plane, with the train and test points, in original units."""
    plt = _plt()
    mean = data.stats.get("mean")
    std = data.stats.get("std")
    pts = {s: xy for s, xy in data.splits.items()}
    raw = {s: (X.double() * std + mean if mean is not None else X.double(), y) for s, (X, y) in pts.items()}
    allx = torch.cat([X for X, _ in raw.values()])
    lo, hi = allx.min(0).values, allx.max(0).values
    pad = (hi - lo) * 0.1 + 1e-6
    gx = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), steps, dtype=torch.float64)
    gy = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), steps, dtype=torch.float64)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], 1)
    if mean is not None:
        grid = (grid - mean) / std
    model.eval()
    with torch.inference_mode():
        probs = task.predict(model, grid.float().to(device)).cpu()
    k = probs.shape[1]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("coolwarm" if k == 2 else "tab10")
    if k == 2:
        cs = ax.contourf(xx, yy, probs[:, 1].reshape(xx.shape), levels=20, cmap=cmap, alpha=0.6, vmin=0, vmax=1)
        ax.contour(xx, yy, probs[:, 1].reshape(xx.shape), levels=[0.5], colors="k", linewidths=1.5)
        fig.colorbar(cs, ax=ax, label=f"P({data.info.class_names[1]})")
    else:
        ax.contourf(xx, yy, probs.argmax(1).reshape(xx.shape), levels=torch.arange(k + 1) - 0.5, cmap=cmap, alpha=0.4)
    for split, marker in (("train", "o"), ("test", "x")):
        if split in raw:
            X, y = raw[split]
            ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=0, vmax=max(k - 1, 1), marker=marker, s=14,
                       edgecolors="k" if marker == "o" else None, linewidths=0.3, label=split)
    names = data.info.feature_names or ["x1", "x2"]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("decision boundary")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion(path: Path, y: torch.Tensor, pred: torch.Tensor, names: list[str], split: str) -> None:
    """Confusion matrix (rows: true class, columns: predicted) with counts."""
    plt = _plt()
    k = max(len(names), int(max(y.max(), pred.max())) + 1)
    cm = torch.bincount(y * k + pred, minlength=k * k).view(k, k)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * k, 1 + 0.5 * k))
    ax.imshow(cm, cmap="Blues")
    labels = names if len(names) == k else [str(i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v:
                ax.text(j, i, v, ha="center", va="center", fontsize=7, color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion ({split})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
