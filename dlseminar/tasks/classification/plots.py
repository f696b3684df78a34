"""Classification's plots: the confusion matrix (any number of classes), misclassified images,
first-layer filters, and `dlsem predict`'s annotated image."""
from __future__ import annotations

from pathlib import Path

import torch

from ...viz.figure import pyplot, save
from ..confusion import confusion_counts
from ...viz.images import as_image

CELL_COUNTS_MAX = 30  # up to this many classes every cell of the confusion matrix shows its count
OVERVIEW_CELLS = 200  # above this many classes the overview sums neighbouring classes into groups
BLOCK_CLASSES = 20  # the most-confused block: at most this many classes, with counts
TITLE_CHARS = 16  # a class name in a mistakes.png title: longer ones end in "…"


def confusion(path: Path, y: torch.Tensor, pred: torch.Tensor, names: list[str], split: str) -> None:
    """Confusion matrix (rows: true class, columns: predicted).

    Up to 30 classes: the whole matrix with a count in every cell. More: a figure of fixed size
    (memory and time do not grow with the classes) with two panels, each titled with what it
    shows: the whole matrix as shares of each true class (log colour, no numbers; above 200
    classes, neighbouring class indices summed into groups), and the block of the classes most
    often confused with each other, with counts. Counting is sparse: no (C, C) array for many C.
    """
    import numpy as np

    plt = pyplot()
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    k = max(len(names), int(max(y.max(initial=0), pred.max(initial=0))) + 1)
    labels = list(names) if len(names) == k else [str(i) for i in range(k)]
    if k <= CELL_COUNTS_MAX:
        cm = confusion_counts(torch.from_numpy(y), torch.from_numpy(pred), k).numpy()
        fig, ax = plt.subplots(figsize=(1.2 + 0.5 * k, 1 + 0.5 * k))
        _count_matrix(ax, cm, labels)
        ax.set_title(f"confusion ({split})")
    else:
        pairs, counts = np.unique(y * k + pred, return_counts=True)
        true_c, pred_c = pairs // k, pairs % k
        fig, (left, right) = plt.subplots(1, 2, figsize=(15, 7.2), gridspec_kw={"width_ratios": [1.15, 1]})
        _overview(fig, left, true_c, pred_c, counts, k)
        _most_confused(right, true_c, pred_c, counts, labels)
        fig.suptitle(f"confusion ({split}): {k} classes, {len(y):,} samples, {int(counts[true_c != pred_c].sum()):,} "
                     f"misclassified", fontsize=10)
    fig.tight_layout()
    save(fig, path)


def _count_matrix(ax, cm, labels, fontsize: int = 7) -> None:
    """A small confusion matrix with a count in each non-zero cell and a name on each row and column."""
    k = len(cm)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    top = cm.max() if cm.size else 0
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v:
                ax.text(j, i, v, ha="center", va="center", fontsize=fontsize, color="white" if v > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")


def _overview(fig, ax, true_c, pred_c, counts, k: int) -> None:
    """Every class at once: the share of each true class (row) predicted as each class (column), log colour."""
    import numpy as np
    from matplotlib.colors import LogNorm

    g = -(-k // OVERVIEW_CELLS)  # classes per group
    n = -(-k // g)  # groups per side
    binned = np.bincount((true_c // g) * n + pred_c // g, weights=counts, minlength=n * n).reshape(n, n)
    rows = binned.sum(1, keepdims=True)
    share = np.divide(binned, rows, out=np.zeros_like(binned), where=rows > 0)
    im = ax.imshow(np.ma.masked_equal(share, 0), cmap="viridis", norm=LogNorm(vmin=1e-3, vmax=1),
                   interpolation="nearest", extent=(-0.5, n * g - 0.5, n * g - 0.5, -0.5))
    ax.set_facecolor("white")  # empty cells (nothing predicted there) stay white
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="share of the true class's samples (log)")
    grouped = f", classes summed in groups of {g}" if g > 1 else ""
    ax.set_title(f"all {k} classes (by index{grouped}); white: 0", fontsize=9)
    ax.set_xlabel("predicted class index")
    ax.set_ylabel("true class index")


def most_confused(true_c, pred_c, counts, n: int) -> list[int]:
    """Up to n classes, sorted: both classes of the largest off-diagonal counts (true -> predicted pairs),
    taken in order of count until n are chosen."""
    import numpy as np

    wrong = true_c != pred_c
    order = np.argsort(-counts[wrong], kind="stable")
    chosen: list[int] = []
    for t, p in zip(true_c[wrong][order].tolist(), pred_c[wrong][order].tolist()):
        for c in (t, p):
            if c not in chosen and len(chosen) < n:
                chosen.append(c)
        if len(chosen) >= n:
            break
    return sorted(chosen)


def _most_confused(ax, true_c, pred_c, counts, labels: list[str]) -> None:
    """The classes of the largest off-diagonal counts (up to BLOCK_CLASSES), their sub-matrix with counts."""
    import numpy as np

    wrong = true_c != pred_c
    if not wrong.any():
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified samples", ha="center", va="center", transform=ax.transAxes)
        return
    sel = np.array(most_confused(true_c, pred_c, counts, BLOCK_CLASSES))
    pos = np.full(len(labels), -1)
    pos[sel] = np.arange(len(sel))
    inside = (pos[true_c] >= 0) & (pos[pred_c] >= 0)
    block = np.zeros((len(sel), len(sel)), dtype=np.int64)
    np.add.at(block, (pos[true_c[inside]], pos[pred_c[inside]]), counts[inside])
    short = [s if len(s) <= 16 else s[:15] + "…" for s in (labels[c] for c in sel)]
    _count_matrix(ax, block, short, fontsize=6)
    held = int(block.sum() - np.trace(block))
    ax.set_title(f"the {len(sel)} most-confused classes of {len(labels)} (counts): "
                 f"{held:,} of {int(counts[wrong].sum()):,} errors", fontsize=9)


def mistakes(path: Path, X: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, names: list[str], stats: dict,
             limit: int = 24) -> bool:
    """A gallery of misclassified images, each titled with its true class over its predicted one (two
    lines, long names shortened: on one line, 'automobile -> airplane' runs into its neighbours);
    False when there is none."""
    wrong = (pred != y).nonzero().flatten()[:limit]
    if len(wrong) == 0:
        return False
    plt = pyplot()
    scale = float(stats.get("scale", torch.tensor(1.0)))
    cols = min(8, len(wrong))
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.0 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(as_image(X[i], scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"true {_short(names[int(y[i])])}\npred {_short(names[int(pred[i])])}", fontsize=7,
                     color="firebrick", linespacing=1.1)
    fig.suptitle(f"misclassified ({int((pred != y).sum())} of {len(y)})", fontsize=9)
    fig.tight_layout()
    save(fig, path)
    return True


def _short(name: str) -> str:
    """A class name that fits above one tile of the gallery (1.6 inches at 7 points: about 20 characters)."""
    return name if len(name) <= TITLE_CHARS else name[: TITLE_CHARS - 1] + "…"


def filters(path: Path, model, limit: int = 32) -> bool:
    """The first convolution's filters, one tile each (what the network looks for first)."""
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None:
        return False
    plt = pyplot()
    w = conv.weight.detach().float().cpu()[:limit]  # (F, C, k, k)
    cols = min(8, len(w))
    rows = (len(w) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, f in zip(axes.flat, w):
        f = (f - f.min()) / (f.max() - f.min() + 1e-8)
        ax.imshow((f[0] if f.shape[0] != 3 else f.permute(1, 2, 0)).numpy(), cmap="gray", interpolation="nearest")
    fig.suptitle(f"first-layer filters {tuple(conv.weight.shape)}", fontsize=9)
    fig.tight_layout()
    save(fig, path)
    return True


def annotated(path: Path, x: torch.Tensor, result: dict, scale: float = 255.0) -> None:
    """The input image (as the model saw it) with its top predictions underneath."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3, 3.6))
    ax.imshow(as_image(x, scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title("\n".join(f"{t['class']}: {t['prob']:.2f}" for t in result["top"][:3]), fontsize=8)
    fig.tight_layout()
    save(fig, path)
