"""Plots written into a run's plots/ folder (matplotlib, headless Agg backend)."""
from __future__ import annotations

from pathlib import Path

import torch


def matplotlib_agg():
    """matplotlib, drawing into files (Agg) whatever the environment says. MPLBACKEND is read by
    `import matplotlib` itself, which raises on an unknown name: it is hidden from that first import."""
    import os
    import sys

    if "matplotlib" not in sys.modules:
        backend = os.environ.pop("MPLBACKEND", None)
        try:
            import matplotlib  # noqa: F401
        finally:
            if backend is not None:
                os.environ["MPLBACKEND"] = backend  # child processes see the user's environment unchanged
    import matplotlib

    matplotlib.use("Agg")
    return matplotlib


def _plt():
    matplotlib_agg()
    import matplotlib.pyplot as plt

    return plt


def curves(path: Path, history: list[dict], summary: dict) -> None:
    """Loss (train and val) and the monitored metric per epoch. The best epoch is marked (a star on the
    monitored curve, "restored" when the run ends with its weights); when early stopping ended the
    run, the patience window (best epoch to the stop) is shaded."""
    plt = _plt()
    epochs = [r["epoch"] for r in history]
    monitor = summary.get("monitor", "val/loss")
    parts = [k for k in (history[0] if history else {}) if k.startswith("train/") and k != "train/loss"]
    panels = [("loss", ["train/loss", "val/loss", *parts])]  # parts: Task.train_logs(), e.g. a detector's losses
    if monitor != "val/loss":
        panels.append((monitor.split("/")[-1], [monitor]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for k in [k for k in keys if any(k in r for r in history)]:  # e.g. no val/loss for a detector
            ax.plot(epochs, [r.get(k, float("nan")) for r in history], label=k, marker="." if len(epochs) < 40 else None)
        best = summary.get("best_epoch")
        if best:
            restored = " (restored)" if summary.get("restored_best") else ""
            ax.axvline(best, color="green", ls="--", lw=1, label=f"best epoch {best}{restored}")
            if monitor in keys:  # the restored weights' score, on the monitored curve
                row = next((r for r in history if r["epoch"] == best), {})
                if monitor in row:
                    ax.plot([best], [row[monitor]], marker="*", ms=13, color="green", mec="k", ls="none", zorder=5)
        if summary.get("stopped_early") and epochs:
            if best and summary.get("patience") and epochs[-1] > best:
                # the epochs early stopping waited for an improvement that did not come
                ax.axvspan(best, epochs[-1], color="orange", alpha=0.15,
                           label=f"patience: {epochs[-1] - best} epochs without improvement")
            ax.axvline(epochs[-1], color="red", ls=":", lw=1, label="stopped")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary.get('name', '')}: {summary.get('model', '')} on {summary.get('dataset', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plane(data, steps: int):
    """The 2-D input plane around the data: (points per split in original units, xx, yy, grid).

    xx, yy: (steps, steps) coordinates in original units, y along rows; grid: (steps*steps, 2) the
    same points normalised as the model sees them (float32)."""
    mean, std = data.stats.get("mean"), data.stats.get("std")
    raw = {s: (X.double() * std + mean if mean is not None else X.double(), y) for s, (X, y) in data.splits.items()}
    allx = torch.cat([X for X, _ in raw.values()])
    lo, hi = allx.min(0).values, allx.max(0).values
    pad = (hi - lo) * 0.1 + 1e-6
    gx = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), steps, dtype=torch.float64)
    gy = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), steps, dtype=torch.float64)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], 1)
    if mean is not None:
        grid = (grid - mean) / std
    return raw, xx, yy, grid.float()


def decision_boundary(path: Path, model, task, data, device, steps: int = 200) -> None:
    """Predicted class over the 2-D input plane, with the train and test points, in original units."""
    plt = _plt()
    raw, xx, yy, grid = plane(data, steps)
    model.eval()
    with torch.inference_mode():
        probs = task.predict(model, grid.to(device)).cpu()
    k = probs.shape[1]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("coolwarm" if k == 2 else "tab10")
    if k > 10:  # class c gets tab10's colour c % 10 (else groups of k/10 neighbouring classes would share one)
        from matplotlib.colors import ListedColormap

        cmap = ListedColormap([cmap(c % 10) for c in range(k)])
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
    ax.set_title("decision boundary" if k <= 10 else f"decision boundary ({k} classes: colours repeat every 10)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


CELL_COUNTS_MAX = 30  # up to this many classes every cell of the confusion matrix shows its count
OVERVIEW_CELLS = 200  # above this many classes the overview sums neighbouring classes into groups
BLOCK_CLASSES = 20  # the most-confused block: at most this many classes, with counts


def confusion(path: Path, y: torch.Tensor, pred: torch.Tensor, names: list[str], split: str) -> None:
    """Confusion matrix (rows: true class, columns: predicted).

    Up to 30 classes: the whole matrix with a count in every cell. More: a figure of fixed size
    (memory and time do not grow with the classes) with two panels, each titled with what it
    shows: the whole matrix as shares of each true class (log colour, no numbers; above 200
    classes, neighbouring class indices summed into groups), and the block of the classes most
    often confused with each other, with counts. Counting is sparse: no (C, C) array for many C.
    """
    import numpy as np

    plt = _plt()
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    k = max(len(names), int(max(y.max(initial=0), pred.max(initial=0))) + 1)
    labels = list(names) if len(names) == k else [str(i) for i in range(k)]
    if k <= CELL_COUNTS_MAX:
        cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


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


def _as_image(x: torch.Tensor, scale: float):
    """(C, H, W) raw tensor -> (H, W[, 3]) float array in [0, 1] for imshow."""
    v = (x.float() / scale).clamp(0, 1)
    return v[0].numpy() if v.shape[0] == 1 else v[:3].permute(1, 2, 0).numpy()


def mistakes(path: Path, X: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, names: list[str], stats: dict,
             limit: int = 24) -> bool:
    """A gallery of misclassified images, titled 'true -> predicted'; False when there is none."""
    wrong = (pred != y).nonzero().flatten()[:limit]
    if len(wrong) == 0:
        return False
    plt = _plt()
    scale = float(stats.get("scale", torch.tensor(1.0)))
    cols = min(8, len(wrong))
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(_as_image(X[i], scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{names[int(y[i])]} -> {names[int(pred[i])]}", fontsize=7, color="firebrick")
    fig.suptitle(f"misclassified ({int((pred != y).sum())} of {len(y)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def filters(path: Path, model, limit: int = 32) -> bool:
    """The first convolution's filters, one tile each (what the network looks for first)."""
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None:
        return False
    plt = _plt()
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def annotated(path: Path, x: torch.Tensor, result: dict, scale: float = 255.0) -> None:
    """The input image (as the model saw it) with its top predictions underneath."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3, 3.6))
    ax.imshow(_as_image(x, scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title("\n".join(f"{t['class']}: {t['prob']:.2f}" for t in result["top"][:3]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw_boxes(ax, boxes, labels, names, scores=None, color_of=None, lw=1.5, fontsize=6, text=True):
    """Boxes (K, 4) xyxy on an axis, each labelled 'class' or 'class score' (unless not text), one colour per class."""
    from matplotlib.patches import Rectangle

    cmap = _plt().get_cmap("tab10")
    for j, (b, l) in enumerate(zip(boxes.tolist(), labels.tolist())):
        c = color_of(l) if color_of else cmap((int(l) - 1) % 10)
        ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, edgecolor=c, lw=lw))
        if not text:
            continue
        label = names[int(l) - 1] if 0 < int(l) <= len(names) else str(int(l))
        if scores is not None:
            label += f" {float(scores[j]):.2f}"
        ax.text(b[0], b[1], label, fontsize=fontsize, color="white", va="bottom",
                bbox=dict(facecolor=c, edgecolor="none", pad=0.5, alpha=0.8))


def detections(path: Path, images, targets, preds, names: list[str], scale: float, split: str,
               min_score: float = 0.5) -> None:
    """Pairs of panels per image: the ground-truth boxes, then the predicted boxes (class and score)."""
    plt = _plt()
    n = len(images)
    per_row = min(3, n)
    rows = (n + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2.5 * per_row * 2, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        gt_ax, pr_ax = axes[i // per_row, 2 * (i % per_row)], axes[i // per_row, 2 * (i % per_row) + 1]
        img = _as_image(images[i], scale)
        keep = preds[i]["scores"] >= min_score
        for ax, title in ((gt_ax, f"truth: {len(targets[i]['labels'])}"), (pr_ax, f"predicted: {int(keep.sum())}")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
        _draw_boxes(gt_ax, targets[i]["boxes"], targets[i]["labels"], names)
        _draw_boxes(pr_ax, preds[i]["boxes"][keep], preds[i]["labels"][keep], names, preds[i]["scores"][keep])
    fig.suptitle(f"{split} images: ground truth | predictions (score >= {min_score:g})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def detection_stages(path: Path, image, st: dict, names: list[str], scale: float, min_score: float = 0.5,
                     n_proposals: int = 20, n_crops: int = 8) -> None:
    """The R-CNN pipeline on one image: top RPN proposals -> their regions warped to a fixed size
    (what the box head classifies; here cut from the image) -> scored regions before NMS -> after NMS."""
    from torchvision.ops import roi_align

    plt = _plt()
    img = _as_image(image, scale)
    props = st["proposals"][:n_proposals]
    fig = plt.figure(figsize=(10, 5.6))
    grid = fig.add_gridspec(2, 1, height_ratios=[3.2, 1.1])
    top, bottom = grid[0].subgridspec(1, 3), grid[1].subgridspec(1, n_crops)
    panels = [fig.add_subplot(top[0, k]) for k in range(3)]
    before, after = st["before_nms"], st["detections"]
    b_keep, a_keep = before["scores"] >= min_score, after["scores"] >= min_score
    for ax, title in zip(panels, (f"1. top {len(props)} of {len(st['proposals'])} RPN proposals",
                                  f"3. classified regions before NMS: {int(b_keep.sum())}",
                                  f"4. after NMS: {int(a_keep.sum())} detections")):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    _draw_boxes(panels[0], props, torch.ones(len(props), dtype=torch.int64), ["proposal"], lw=0.8, text=False,
                color_of=lambda _: "yellow")
    _draw_boxes(panels[1], before["boxes"][b_keep], before["labels"][b_keep], names, before["scores"][b_keep], lw=0.8)
    _draw_boxes(panels[2], after["boxes"][a_keep], after["labels"][a_keep], names, after["scores"][a_keep])
    # warped regions: each proposal's box cut from the image and resized to 32 x 32
    crops = roi_align(image[None].float(), [props[:n_crops].float()], output_size=(32, 32), aligned=True)
    for k in range(n_crops):
        ax = fig.add_subplot(bottom[0, k])
        ax.axis("off")
        if k < len(crops):
            ax.imshow(_as_image(crops[k], scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"proposal {k + 1}", fontsize=7)
    fig.suptitle("R-CNN stages: proposals -> warped regions -> classify each -> NMS", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.text(0.5, 0.015, "2. the top proposals warped to a fixed size (R-CNN's regions); Faster R-CNN pools them from "
                         "the shared feature map instead (RoI align, 7x7), then classifies and refines each", fontsize=7,
             ha="center")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def boxes_image(path: Path, image, pred: dict, names: list[str], scale: float) -> None:
    """One image (its own size) with its detections drawn: class and score on each box."""
    plt = _plt()
    h, w = image.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(2.5, 5 * w / max(h, w)), max(2.5, 5 * h / max(h, w))))
    ax.imshow(_as_image(image, scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    _draw_boxes(ax, pred["boxes"], pred["labels"], names, pred["scores"], fontsize=7)
    ax.set_title(f"{len(pred['labels'])} detections", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def feature_maps(folder: Path, model, x: torch.Tensor, max_layers: int = 4, max_maps: int = 16) -> list[str]:
    """Feature maps of the first few conv layers for one normalised input (1, C, H, W):
    the lesson's low-, mid- and high-level features."""
    plt = _plt()
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
    for n, _ in chosen:
        a = acts[n][0][:max_maps]  # (maps, h, w)
        cols = min(8, len(a))
        rows = (len(a) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, fm in zip(axes.flat, a):
            ax.imshow(fm.numpy(), cmap="viridis", interpolation="nearest")
        fig.suptitle(f"{n}: {tuple(acts[n].shape[1:])}", fontsize=8)
        fig.tight_layout()
        name = f"features_{n.replace('.', '_') or 'conv'}.png"
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written


IGNORE_RGB = (200, 200, 200)  # pixels without a label (mask value 255): a neutral light grey
LEGEND_CLASSES = 24  # most classes a segmentation legend lists (the largest areas first)


def class_colors(k: int, palette: torch.Tensor | None = None):
    """(k, 3) uint8 colours: the dataset's palette when it has one, else black background and tab20."""
    import numpy as np

    if palette is not None and len(palette) >= k:
        return np.asarray(palette[:k], dtype=np.uint8)
    from matplotlib import colormaps

    tab = (np.asarray(colormaps["tab20"].colors) * 255).round().astype(np.uint8)
    out = np.zeros((k, 3), dtype=np.uint8)
    for i in range(1, k):
        out[i] = tab[(i - 1) % len(tab)]
    return out


def rgb_uint8(x: torch.Tensor, scale: float = 255.0):
    """(C, H, W) raw image tensor -> (H, W, 3) uint8 array (grayscale repeated)."""
    v = (x.float() / scale * 255).round().clamp(0, 255).to(torch.uint8)
    v = v[:1].expand(3, -1, -1) if v.shape[0] == 1 else v[:3]
    return v.permute(1, 2, 0).numpy()


def seg_overlay(image, mask, colors, alpha: float = 0.5):
    """(H, W, 3) uint8 image blended with the class colours of mask (H, W); ignored pixels neutral grey."""
    import numpy as np

    m = np.asarray(mask, dtype=np.int64)
    ignore = m >= len(colors)  # 255
    tint = colors[np.where(ignore, 0, m)].astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * tint
    out[ignore] = IGNORE_RGB
    return out.round().clip(0, 255).astype(np.uint8)


def seg_predictions(path: Path, X: torch.Tensor, masks: torch.Tensor, preds: torch.Tensor, names: list[str], colors,
                    scale: float, split: str) -> None:
    """Rows of image | true mask | predicted mask (overlays), with a legend of the class colours."""
    from matplotlib.patches import Patch

    plt = _plt()
    shown = set(masks.unique().tolist()) | set(preds.unique().tolist())
    keep = list(range(len(names))) if len(names) <= LEGEND_CLASSES else sorted(c for c in shown if c < len(names))
    more = 0
    if len(keep) > LEGEND_CLASSES:  # many classes in view: the legend lists the largest areas, counts the rest
        area = torch.bincount(torch.cat([masks.flatten(), preds.flatten()]).long(), minlength=256)
        more = len(keep) - LEGEND_CLASSES
        keep = sorted(sorted(keep, key=lambda c: -int(area[c]))[:LEGEND_CLASSES])
    handles = [Patch(color=colors[c] / 255, label=names[c]) for c in keep]
    if more:
        handles.append(Patch(color="none", label=f"+ {more} more classes"))
    if 255 in shown:
        handles.append(Patch(color=tuple(v / 255 for v in IGNORE_RGB), label="ignore (255)"))
    n, cols = len(X), max(1, min(len(handles), 6))
    legend_h = 0.15 + 0.22 * -(-len(handles) // cols)  # inches: one line per 6 classes
    height = 2.3 * n + 0.3 + legend_h
    fig, axes = plt.subplots(n, 3, figsize=(7.5, height), squeeze=False)
    for i in range(n):
        img = rgb_uint8(X[i], scale)
        valid = masks[i] != 255
        acc = float((preds[i][valid] == masks[i][valid]).float().mean()) if valid.any() else float("nan")
        panels = [(img, "image"), (seg_overlay(img, masks[i].numpy(), colors), "true"),
                  (seg_overlay(img, preds[i].numpy(), colors), f"predicted (pixel acc {acc:.2f})")]
        for ax, (a, title) in zip(axes[i], panels):
            ax.imshow(a, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.legend(handles=handles, loc="lower center", ncol=cols, fontsize=7, frameon=False)
    fig.suptitle(f"predictions on {split} images", fontsize=9)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(path: Path, runs: list[dict], monitor: str) -> None:
    """Learning curves of several runs overlaid, one colour per run: the monitored metric, and the
    validation (solid) and training (dashed) loss. runs: [{"label", "history": [row, ...], "status"}].
    The loss axis is scaled to the runs that did not diverge; a diverged run leaves it upwards,
    marked x where it stopped."""
    plt = _plt()
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def lr_find(path: Path, lrs: list[float], smoothed: list[float], raw: list[float], suggestion: float | None,
            rule: str, others: dict[str, float] | None = None) -> None:
    """The learning-rate range test: loss against the learning rate (log x), the suggestion marked."""
    plt = _plt()
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def health(path: Path, h: dict, summary: dict | None = None) -> None:
    """Training health (health.py): gradient norm by layer depth, dead ReLU units, near-zero weights,
    weight histograms of the last epoch."""
    plt = _plt()
    import math

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
    ax.set_title(f"dead ReLU units (0 for all {h['probe_samples']} probe samples)")
    ax = axes[1][0]
    ax.plot(epochs, h["near_zero_all"], color="k", lw=2, label="all weights")
    for n in layers if len(layers) <= 12 else []:
        ax.plot(epochs, h["near_zero"][n], lw=0.8, label=n.removesuffix(".weight"))
    ax.set_xlabel("epoch")
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
    if summary:
        fig.suptitle(f"{summary.get('name', '')}: training health", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
