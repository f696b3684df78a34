"""Object detection: boxes and classes per image; the detector's own losses; COCO mAP from pycocotools.

A batch is (list of images (C, H, W), list of target dicts {"boxes" (K, 4) xyxy, "labels" (K,)}),
as torchvision's detectors take them. In training the model returns its four losses; their sum
is the training loss and each part is logged per epoch (train/rpn_objectness, train/rpn_box,
train/cls, train/box) through the Trainer's generic `train_logs` hook. In evaluation the model
returns boxes, labels and scores; the split's ground truth and detections are handed to
pycocotools' COCOeval (built in memory, one call per evaluation), which gives mAP@[.5:.95]
("map"), mAP@0.5 ("map50", the monitor), mAP@0.75 and recall (AR with up to 100 detections
per image), and per-class AP for `dlsem eval`. Images without objects take part as negatives:
any box predicted on them is a false positive.
"""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch

from ...errors import ConfigError
from ...registry import TASKS
from ..base import Task

# torchvision's loss names -> ours (the order is the order in metrics.csv)
PARTS = {"loss_objectness": "rpn_objectness", "loss_rpn_box_reg": "rpn_box", "loss_classifier": "cls",
         "loss_box_reg": "box"}
SHOW_SCORE = 0.5  # plots draw detections scoring at least this


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.double()
    return torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist()


def coco_dicts(gts: list[dict], dts: list[dict], num_classes: int, names=None) -> tuple[dict, list[dict]]:
    """COCO ground-truth dataset and detection results for per-image targets and predictions.

    Image i gets id i + 1; label k is category id k; boxes become [x, y, width, height].
    This is what a COCO JSON file of the same data holds (see tests/unit/test_detection.py).
    """
    names = names or [str(k) for k in range(1, num_classes + 1)]
    images = [{"id": i + 1} for i in range(len(gts))]
    cats = [{"id": k, "name": names[k - 1]} for k in range(1, num_classes + 1)]
    anns, res = [], []
    for i, t in enumerate(gts):
        for box, label in zip(_xywh(t["boxes"]), t["labels"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(label), "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
    for i, d in enumerate(dts):
        for box, label, score in zip(_xywh(d["boxes"]), d["labels"].tolist(), d["scores"].double().tolist()):
            res.append({"id": len(res) + 1, "image_id": i + 1, "category_id": int(label), "bbox": box,
                        "score": score, "area": box[2] * box[3], "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": cats}, res


def coco_eval(gt_dataset: dict, results: list[dict]):
    """pycocotools' COCOeval (bbox) run in memory and quietly; returns the evaluated object."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = gt_dataset
        gt.createIndex()
        dt = COCO()  # what gt.loadRes(results) builds, also when there are no detections at all
        dt.dataset = {"images": gt_dataset["images"], "categories": gt_dataset["categories"],
                      "annotations": results}
        dt.createIndex()
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def _mean(a: np.ndarray) -> float:
    a = a[a > -1]  # -1: no ground truth for that class / threshold
    return float(a.mean()) if a.size else math.nan


class DetMetrics:
    """Collects a split's targets and detections (on the CPU); compute() runs COCOeval once."""

    def __init__(self, num_classes: int, names: list[str]):
        self.k, self.names = num_classes, names
        self.gts: list[dict] = []
        self.dts: list[dict] = []
        self._eval = None

    def update(self, outputs: list[dict], targets: list[dict]) -> None:
        for o, t in zip(outputs, targets):
            self.gts.append({"boxes": t["boxes"].detach().cpu(), "labels": t["labels"].detach().cpu()})
            self.dts.append({k: o[k].detach().cpu() for k in ("boxes", "labels", "scores")})
        self._eval = None

    def coco(self):
        if self._eval is None:
            self._eval = coco_eval(*coco_dicts(self.gts, self.dts, self.k, self.names))
        return self._eval

    def compute(self) -> dict[str, float]:
        s = self.coco().stats  # COCO's 12 summary numbers; -1 where undefined (no ground truth)
        val = lambda v: float(v) if v > -1 else math.nan  # noqa: E731
        return {"map": val(s[0]), "map50": val(s[1]), "map75": val(s[2]), "recall": val(s[8])}

    def per_class(self) -> list[dict]:
        """Per class: objects in the split, AP@[.5:.95], AP@0.5, recall (AR@100), detections made."""
        e = self.coco()
        prec, rec = e.eval["precision"], e.eval["recall"]  # (T, R, K, A, M), (T, K, A, M); A 0 = all, M -1 = 100
        labels_gt = torch.cat([t["labels"] for t in self.gts]) if self.gts else torch.zeros(0, dtype=torch.int64)
        labels_dt = torch.cat([d["labels"] for d in self.dts]) if self.dts else torch.zeros(0, dtype=torch.int64)
        out = []
        for k in range(self.k):
            out.append({"class": self.names[k], "objects": int((labels_gt == k + 1).sum()),
                        "detections": int((labels_dt == k + 1).sum()), "ap": _mean(prec[:, :, k, 0, -1]),
                        "ap50": _mean(prec[0, :, k, 0, -1]), "recall": _mean(rec[:, k, 0, -1])})
        return out


class Detections(list):
    """One {"boxes", "labels", "scores"} dict per image; .cpu() as a tensor batch has (for `dlsem predict`)."""

    def cpu(self) -> "Detections":
        return Detections({k: v.cpu() for k, v in d.items()} for d in self)


@TASKS.register("detection")
class Detection(Task):
    """Find objects: boxes, classes and scores per image; monitor val/map50."""

    kind = "detection"
    output_kind = "detections"
    monitor, mode = "val/map50", "max"
    # no val/loss: in evaluation a detector returns detections, not its losses
    metric_modes = {"map": "max", "map50": "max", "map75": "max", "recall": "max"}

    def __init__(self, info, cfg):
        # No loss from the registry: a detector computes its own (RPN and box-head parts).
        self.info = info
        if cfg["loss.name"] not in ("auto", "rcnn"):
            raise ConfigError(f"loss {cfg['loss.name']!r} does not fit a detection task: the detector trains on its own "
                              f"losses (rpn_objectness + rpn_box + cls + box); leave loss.name at auto")
        if cfg["loss.class_weights"]:
            raise ConfigError("loss.class_weights is not supported by the detection task")
        self.loss_name = "rcnn"
        self.aux_weight = 0.0
        self.num_outputs = info.num_classes + 1  # + background (label 0)
        self._parts: dict[str, list] = {}
        self._sizes: list[int] = []

    @classmethod
    def losses(cls) -> list[str]:
        return ["rcnn"]

    def outputs_for(self, wants: str) -> int:
        return self.info.num_classes + 1

    def training_step(self, model, batch):
        """The detector's loss dict summed; each part is kept for train_logs()."""
        images, targets = batch
        parts = model(images, targets)
        for k, v in parts.items():
            self._parts.setdefault(PARTS.get(k, k), []).append(v.detach())
        self._sizes.append(len(images))
        return sum(parts.values()), len(images)

    def train_logs(self) -> dict[str, float]:
        """Mean of each loss part over the epoch's images (one sync), then start afresh."""
        if not self._sizes:
            return {}
        w = torch.tensor(self._sizes, dtype=torch.float64)
        n = float(w.sum())
        out = {k: float((torch.stack(v).double().cpu() * w).sum()) / n for k, v in self._parts.items()}
        self._parts, self._sizes = {}, []
        return out

    def new_metrics(self, device):
        return DetMetrics(self.info.num_classes, self.info.class_names)

    def eval_step(self, model, batch, metrics) -> None:
        images, targets = batch
        metrics.update(model(images), targets)

    def predict(self, model, x) -> Detections:
        """Detections for a batch of normalised images ((B, C, H, W) or a list of (C, H, W))."""
        return Detections(model(list(x)))

    def details(self, metrics):
        rows = [[r["class"], r["objects"], r["detections"], r["ap"], r["ap50"], r["recall"]] for r in metrics.per_class()]
        return ["class", "objects", "detections", "AP@[.5:.95]", "AP@0.5", "recall"], rows

    def plots(self, folder, model, data, device):
        """detections.png (val images: ground truth beside predictions) and stages.png (one image's
        proposals, scored regions before NMS, detections after NMS, and warped proposal regions)."""
        from . import plots

        split = "val" if "val" in data.splits else "test"
        images, targets = data.splits[split]
        # up to 5 images with objects and 1 without (a negative), from the first 30
        first = range(min(30, len(targets)))
        busy = [i for i in first if len(targets[i]["labels"])][:5]
        empty = [i for i in first if not len(targets[i]["labels"])][:1]
        chosen = sorted(busy + empty)
        raw = [images[i] for i in chosen]
        transform = data.transform(device)
        norm = lambda x: x.to(device) if transform is None else transform(x.to(device))  # noqa: E731
        model.eval()
        with torch.inference_mode():
            preds = [{k: v.cpu() for k, v in d.items()} for d in model([norm(x) for x in raw])]
        scale = float(data.stats.get("scale", torch.tensor(255.0)))
        names = self.info.class_names
        plots.detections(folder / "detections.png", raw, [targets[i] for i in chosen], preds, names, scale, split, SHOW_SCORE)
        written = ["detections.png"]
        stages = getattr(model, "stages", None)
        if stages is not None:
            pick = max(first, key=lambda i: len(targets[i]["labels"]))  # the busiest image
            with torch.inference_mode():
                st = stages(norm(images[pick]))
            st = {k: ({kk: vv.cpu() for kk, vv in v.items()} if isinstance(v, dict) else v.cpu()) for k, v in st.items()}
            plots.stages(folder / "stages.png", images[pick], st, names, scale, SHOW_SCORE)
            written.append("stages.png")
        return written

    # -- dlsem predict: boxes on each image at its own size (the detector resizes internally)
    predicts_images = True

    def predict_size(self, info):
        return None

    def describe(self, output, top_k):
        """The image's detections (best first) as JSON-ready dicts."""
        names = self.info.class_names
        return {"detections": [{"class": names[int(l) - 1], "label": int(l), "score": float(s),
                                "box": [round(float(v), 2) for v in b]}
                               for b, l, s in zip(output["boxes"], output["labels"], output["scores"])]}

    def write_prediction(self, folder, index, stem, x, output, result, data):
        """<stem>_boxes.png: the image with its detections drawn (class and score)."""
        from . import plots

        path = folder / f"{stem}_boxes.png"
        plots.boxes_image(path, x, output, self.info.class_names, float(data.stats.get("scale", torch.tensor(255.0))))
        return {"annotated": str(path)}

    def prediction_table(self, results):
        files = "annotated" in results[0]
        header = ["image", "objects", "detections (class score [x1, y1, x2, y2])", *(["annotated"] if files else [])]
        rows = [[r["image"], str(len(r["detections"])),
                 "\n".join(f"{d['class']} {d['score']:.2f} [{', '.join(f'{v:.0f}' for v in d['box'])}]"
                           for d in r["detections"]) or "-",
                 *([r["annotated"]] if files else [])] for r in results]
        return header, rows
