"""Semantic segmentation: one class per pixel; metrics from one confusion matrix over the whole split.

Labels are (B, H, W) class-index masks; 255 marks pixels to ignore (in the loss and the metrics).
The model returns scores (B, C, H, W). Pixel accuracy, per-class IoU = TP / (TP + FP + FN),
mIoU and Dice = 2 TP / (2 TP + FP + FN) all come from the (C, C) confusion matrix accumulated
over every pixel of the split, not averaged per batch. A class with no pixel in either the
truth or the prediction has no IoU (NaN) and is left out of the means.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...engine.losses import IGNORE
from ...registry import TASKS
from ..base import Task
from ..confusion import confusion_counts


class SegMetrics:
    """Loss sum and a (C, C) pixel confusion matrix on the device; one sync in compute()."""

    def __init__(self, num_classes: int, device):
        self.k = num_classes
        self.cm = torch.zeros(self.k, self.k, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.n = 0

    def update(self, out, y, loss=None) -> None:
        """out: scores (B, C, H, W); y: masks (B, H, W) with 255 = ignore."""
        pred = out.argmax(1)  # (B, H, W)
        valid = y != IGNORE
        self.cm += confusion_counts(y[valid], pred[valid], self.k)
        if loss is not None:
            self.loss_sum += loss.detach().double() * len(y)
        self.n += len(y)

    def matrix(self) -> torch.Tensor:
        """(true, predicted) pixel counts."""
        return self.cm.cpu()

    def per_class(self) -> dict[str, torch.Tensor]:
        cm = self.matrix().double()
        tp, gt, pr = cm.diag(), cm.sum(1), cm.sum(0)
        union = gt + pr - tp
        nan = torch.full_like(tp, float("nan"))
        return {"iou": torch.where(union > 0, tp / union.clamp(min=1), nan),
                "dice": torch.where(gt + pr > 0, 2 * tp / (gt + pr).clamp(min=1), nan),
                "pixels": gt}

    def compute(self) -> dict[str, float]:
        cm = self.matrix().double()
        pc = self.per_class()
        return {"loss": float(self.loss_sum) / max(self.n, 1), "acc": float(cm.trace() / cm.sum().clamp(min=1)),
                "miou": float(pc["iou"].nanmean()), "dice": float(pc["dice"].nanmean())}


@TASKS.register("segmentation")
class Segmentation(Task):
    """Predict a class for every pixel; monitor val/miou."""

    kind = "segmentation"
    output_kind = "scores"
    default_loss = "ce"
    monitor, mode = "val/miou", "max"
    metric_modes = {"loss": "min", "acc": "max", "miou": "max", "dice": "max"}
    supported = ("index_logits", "index_logprobs", "pixel_logits")

    def outputs_for(self, wants: str) -> int:
        return self.info.num_classes

    def prepare(self, out, y):
        if self.wants == "pixel_logits":
            return out, y
        # F.cross_entropy / nll_loss take (B, C, H, W) and (B, H, W) as they are; their default
        # ignore_index is -100, so the masks' 255 is mapped to it
        y = y.masked_fill(y == IGNORE, -100)
        return (out if self.wants == "index_logits" else F.log_softmax(out, 1)), y

    def new_metrics(self, device):
        return SegMetrics(self.info.num_classes, device)

    def predict(self, model, x):
        """Class probabilities per pixel (B, C, H, W)."""
        return F.softmax(model(x), 1)

    def details(self, metrics):
        pc = metrics.per_class()
        names = self.info.class_names or [str(i) for i in range(metrics.k)]
        rows = [[n, int(pc["pixels"][i]), float(pc["iou"][i]), float(pc["dice"][i])] for i, n in enumerate(names)]
        return ["class", "pixels", "iou", "dice"], rows

    def colors(self, data):
        """(K, 3) uint8 class colours: the dataset's palette (palette masks) or a fixed colormap."""
        from ...viz.images import class_colors

        return class_colors(self.info.num_classes, data.stats.get("palette"))

    def plots(self, folder, model, data, device):
        """predictions.png: up to 6 validation images, their true and their predicted masks."""
        from . import plots

        split = "val" if "val" in data.splits else "test"
        X, y = (t[:6] for t in data.splits[split])
        transform = data.transform(device)
        model.eval()
        with torch.inference_mode():
            x = X.to(device)
            pred = self.predict(model, x if transform is None else transform(x)).argmax(1).cpu()
        plots.predictions(folder / "predictions.png", X, y, pred, self.info.class_names, self.colors(data),
                          float(data.stats.get("scale", 255.0)), split)
        return ["predictions.png"]

    # -- dlsem predict: one class per pixel of each image at its own size (U-Net pads and crops)
    predicts_images = True

    def predict_size(self, info):
        return None

    def describe(self, output, top_k):
        """Image size and the share of its pixels given to each predicted class (largest first)."""
        mask = output.argmax(0)  # (H, W)
        share = torch.bincount(mask.flatten(), minlength=self.info.num_classes).double() / mask.numel()
        order = [int(i) for i in share.argsort(descending=True) if share[i] > 0]
        return {"height": int(mask.shape[0]), "width": int(mask.shape[1]),
                "classes": [{"class": self.info.class_names[i], "share": float(share[i])} for i in order]}

    def write_prediction(self, folder, index, stem, x, output, result, data):
        """<stem>_mask.png (class indices, palette mode: the values are the classes, the palette shows
        them in colour) and <stem>_overlay.png (the classes' colours blended on the image)."""
        from PIL import Image

        from ...viz.images import rgb_uint8
        from . import plots

        colors = self.colors(data)
        mask = output.argmax(0).to(torch.uint8).numpy()  # (H, W), the input's own size
        im = Image.fromarray(mask, "P")
        im.putpalette(colors.flatten().tolist() + [0] * (768 - colors.size))  # 256 entries: an 8-bit PNG, as VOC's
        paths = {"mask": folder / f"{stem}_mask.png", "overlay": folder / f"{stem}_overlay.png"}
        im.save(paths["mask"])
        rgb = plots.overlay(rgb_uint8(x, float(data.stats.get("scale", 255.0))), mask, colors)
        Image.fromarray(rgb, "RGB").save(paths["overlay"])
        return {k: str(v) for k, v in paths.items()}

    def prediction_table(self, results):
        files = "mask" in results[0]
        header = ["image", "size", "classes (pixel share)", *(["mask", "overlay"] if files else [])]
        rows = [[r["image"], f"{r['width']}x{r['height']}",
                 ", ".join(f"{c['class']} {c['share']:.2f}" for c in r["classes"]),
                 *([r["mask"], r["overlay"]] if files else [])] for r in results]
        return header, rows
