"""Classification: class-index labels, sigmoid/softmax link, accuracy from a confusion matrix."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...registry import TASKS
from ..base import Task
from ..confusion import confusion_counts


class ConfusionMetrics:
    """Accumulates the loss sum and a (C, C) confusion matrix on the device; one sync in compute()."""

    def __init__(self, task, device):
        self.task, self.k = task, max(task.info.num_classes, 2)
        self.cm = torch.zeros(self.k, self.k, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.top5 = torch.zeros((), dtype=torch.int64, device=device) if self.k >= 5 else None
        self.n = 0

    def update(self, out, y, loss) -> None:
        pred = self.task.labels(out)
        self.cm += confusion_counts(y, pred, self.k)
        if self.top5 is not None:
            self.top5 += out.topk(5, 1).indices.eq(y[:, None]).any(1).sum()
        self.loss_sum += loss.detach().double() * len(y)
        self.n += len(y)

    def matrix(self) -> torch.Tensor:
        """(true, predicted) counts."""
        return self.cm.cpu()

    def compute(self) -> dict[str, float]:
        cm = self.matrix().double()
        n = max(self.n, 1)
        out = {"loss": float(self.loss_sum) / n, "acc": float(cm.trace() / cm.sum().clamp(min=1))}
        if self.top5 is not None:
            out["top5"] = float(self.top5) / n
        return out


@TASKS.register("classification")
class Classification(Task):
    """Predict one of C classes; monitor val/acc."""

    kind = "classification"
    draws_boundary = True
    output_kind = "scores"
    default_loss = "ce"
    monitor, mode = "val/acc", "max"
    metric_modes = {"loss": "min", "acc": "max", "top5": "max"}
    supported = ("index_logits", "index_logprobs", "target_logits", "target_values")

    def metric_names(self) -> list[str]:
        has_top5 = max(self.info.num_classes, 2) >= 5  # as ConfusionMetrics counts it
        return [k for k in self.metric_modes if k != "top5" or has_top5]

    def outputs_for(self, wants: str) -> int:
        # Two classes with a sigmoid-style loss use one output (y_hat = sigma(z)), as in the
        # perceptron lesson; softmax losses use one score per class.
        c = self.info.num_classes
        return 1 if c == 2 and wants in ("target_logits", "target_values") else c

    def _targets(self, y):
        if self.num_outputs == 1:
            return y.to(torch.float32).unsqueeze(1)  # (B, 1)
        return F.one_hot(y, self.num_outputs).to(torch.float32)  # (B, C)

    def prepare(self, out, y):
        w = self.wants
        if w == "index_logits":
            return out, y
        if w == "index_logprobs":
            return F.log_softmax(out, 1), y
        if w == "target_logits":
            return out, self._targets(y)
        if self.num_outputs == 1:  # y_hat = sigma(z) against y in {0, 1}
            return torch.sigmoid(out), self._targets(y)
        return self.probs(out), self._targets(y)

    def probs(self, out: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, C) from the model's scores."""
        if out.shape[1] == 1:
            p = torch.sigmoid(out)
            return torch.cat([1 - p, p], 1)
        return F.softmax(out, 1)

    def labels(self, out: torch.Tensor) -> torch.Tensor:
        """Predicted class indices (B,)."""
        return (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)

    def new_metrics(self, device):
        return ConfusionMetrics(self, device)

    def reference_loss(self):
        from ...diagnosis import chance_loss

        return chance_loss(self.loss_name, self.info.num_classes)

    def predict(self, model, x):
        return self.probs(model(x))

    def confusion_table(self, metrics):
        """(header, rows) of the confusion matrix: rows true class, columns predicted."""
        cm = metrics.matrix()
        names = self.info.class_names or [str(i) for i in range(cm.shape[0])]
        return ["true \\ predicted", *names], [[n, *[int(v) for v in cm[i]]] for i, n in enumerate(names)]

    def details(self, metrics):
        cm = metrics.matrix().double()
        names = self.info.class_names or [str(i) for i in range(cm.shape[0])]
        # whole columns at once: a thousand classes cost one pass, not a thousand (C, C) reductions
        hit, support, predicted = cm.diagonal(), cm.sum(1), cm.sum(0)
        nan = torch.tensor(float("nan"), dtype=cm.dtype)
        recall = torch.where(support > 0, hit / support.clamp(min=1), nan)
        precision = torch.where(predicted > 0, hit / predicted.clamp(min=1), nan)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), nan)
        rows = [[name, int(s), p, r, f] for name, s, p, r, f in
                zip(names, support.tolist(), precision.tolist(), recall.tolist(), f1.tolist())]
        return ["class", "support", "precision", "recall", "f1"], rows

    def plots(self, folder, model, data, device):
        from ...boundary import decision_boundary
        from ...viz.network import network
        from . import plots

        written = []
        split = "test" if "test" in data.splits else "val"
        X, y = data.splits[split]
        transform = data.transform(device)
        model.eval()
        with torch.inference_mode():
            scores = [model(xb.to(device) if transform is None else transform(xb.to(device))) for xb in X.split(1024)]
            pred = torch.cat([self.labels(s).cpu() for s in scores])
        plots.confusion(folder / "confusion_matrix.png", y, pred, self.info.class_names, split)
        written.append("confusion_matrix.png")
        if data.info.in_shape == (2,):
            decision_boundary(folder / "decision_boundary.png", model, self, data, device)
            written.append("decision_boundary.png")
            if network(folder / "network.png", model, data, device, probs=self.probs):  # MLPs and perceptrons
                written.append("network.png")
        if len(data.info.in_shape) == 3:
            if plots.mistakes(folder / "mistakes.png", X, y, pred, self.info.class_names, data.stats):
                written.append("mistakes.png")
            if plots.filters(folder / "filters.png", model):
                written.append("filters.png")
        return written

    # -- dlsem predict: the lesson's softmax table, inputs resized to the model's size
    predicts_images = True

    def describe(self, output, top_k):
        top = output.topk(min(top_k, output.shape[0]))
        return {"top": [{"class": self.info.class_names[int(i)], "prob": float(p)} for p, i in zip(top.values, top.indices)]}

    def write_prediction(self, folder, index, stem, x, output, result, data, cam=None):
        """The annotated image; with cam (a Grad-CAM heatmap (H, W) for the top class, its feature map's
        name) also <index>_<stem>_cam.png: the image beside the heatmap over it."""
        from pathlib import Path

        from . import plots

        name = f"{index:04d}_{Path(result['image']).stem}.png"
        scale = float(data.stats.get("scale", 255.0))
        plots.annotated(folder / name, x, result, scale)
        written = {"annotated": str(folder / name)}
        if cam is not None:
            from ...viz.cam import overlay

            heat, layer = cam
            top = result["top"][0]
            cam_name = name.replace(".png", "_cam.png")
            title = f"Grad-CAM of {top['class']} ({top['prob']:.2f}) at layer {layer}"
            overlay(folder / cam_name, x, heat, title, scale)
            written["cam"] = str(folder / cam_name)
        return written

    def prediction_table(self, results):
        header = ["image", *[f"#{i + 1}" for i in range(len(results[0]["top"]))]]
        return header, [[r["image"], *[f"{x['class']} {x['prob']:.2f}" for x in r["top"]]] for r in results]
