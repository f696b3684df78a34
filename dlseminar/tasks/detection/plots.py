"""Detection's plots: ground truth beside predictions, the R-CNN stages on one image, and
`dlsem predict`'s boxes drawn on an image."""
from __future__ import annotations

from pathlib import Path

import torch

from ...viz.figure import pyplot, save
from ...viz.images import as_image


def _draw_boxes(ax, boxes, labels, names, scores=None, color_of=None, lw=1.5, fontsize=6, text=True):
    """Boxes (K, 4) xyxy on an axis, each labelled 'class' or 'class score' (unless not text), one colour per class."""
    from matplotlib.patches import Rectangle

    cmap = pyplot().get_cmap("tab10")
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
    plt = pyplot()
    n = len(images)
    per_row = min(3, n)
    rows = (n + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2.5 * per_row * 2, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        gt_ax, pr_ax = axes[i // per_row, 2 * (i % per_row)], axes[i // per_row, 2 * (i % per_row) + 1]
        img = as_image(images[i], scale)
        keep = preds[i]["scores"] >= min_score
        for ax, title in ((gt_ax, f"truth: {len(targets[i]['labels'])}"), (pr_ax, f"predicted: {int(keep.sum())}")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
        _draw_boxes(gt_ax, targets[i]["boxes"], targets[i]["labels"], names)
        _draw_boxes(pr_ax, preds[i]["boxes"][keep], preds[i]["labels"][keep], names, preds[i]["scores"][keep])
    fig.suptitle(f"{split} images: ground truth | predictions (score >= {min_score:g})", fontsize=9)
    fig.tight_layout()
    save(fig, path)


def stages(path: Path, image, st: dict, names: list[str], scale: float, min_score: float = 0.5,
                     n_proposals: int = 20, n_crops: int = 8) -> None:
    """The R-CNN pipeline on one image: top RPN proposals -> their regions warped to a fixed size
    (what the box head classifies; here cut from the image) -> scored regions before NMS -> after NMS."""
    from torchvision.ops import roi_align

    plt = pyplot()
    img = as_image(image, scale)
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
            ax.imshow(as_image(crops[k], scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"proposal {k + 1}", fontsize=7)
    fig.suptitle("R-CNN stages: proposals -> warped regions -> classify each -> NMS", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.text(0.5, 0.015, "2. the top proposals warped to a fixed size (R-CNN's regions); Faster R-CNN pools them from "
                         "the shared feature map instead (RoI align, 7x7), then classifies and refines each", fontsize=7,
             ha="center")
    save(fig, path)


def boxes_image(path: Path, image, pred: dict, names: list[str], scale: float) -> None:
    """One image (its own size) with its detections drawn: class and score on each box."""
    plt = pyplot()
    h, w = image.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(2.5, 5 * w / max(h, w)), max(2.5, 5 * h / max(h, w))))
    ax.imshow(as_image(image, scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    _draw_boxes(ax, pred["boxes"], pred["labels"], names, pred["scores"], fontsize=7)
    ax.set_title(f"{len(pred['labels'])} detections", fontsize=8)
    fig.tight_layout()
    save(fig, path)
