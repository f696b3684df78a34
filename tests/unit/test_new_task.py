"""A task the package does not have, added from this file alone: multi-label classification.

Everything it needs is registered here, with no project file edited: a loss (BCE over
independent labels, with a positive-class weight), a task (per-label F1, its own monitor
`val/f1` with mode "max"), a dataset of samples that split themselves, and it is trained and
evaluated through the real CLI entry point (`dlsem train` / `dlsem eval`) like any other.
What adding each piece touches is listed in README ("Adding a model, dataset, loss or task").
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlseminar.catalog import load_all
from dlseminar.data import Data, DataInfo, Samples, SplitSpec, check_split, split_indices
from dlseminar.registry import DATASETS, LOSSES, TASKS
from dlseminar.tasks import Task

LABELS = ["red", "round", "large"]


@dataclass
class Tags(Samples):
    """N samples of F features with L independent 0/1 labels each."""

    kinds: ClassVar[tuple[str, ...]] = ("multilabel",)
    X: np.ndarray
    Y: np.ndarray

    def split(self, spec: SplitSpec) -> Data:
        check_split(spec.name, len(self.X), spec.val, spec.test, "samples")
        parts = split_indices(len(self.X), spec.val, spec.test, spec.seed)
        info = DataInfo(name=spec.name, kind="multilabel", in_shape=(self.X.shape[1],), num_classes=len(LABELS),
                        class_names=list(LABELS))
        spec.check(info)  # a checkpoint's description, before its stats apply
        stats = dict(spec.stats or {})
        if "mean" not in stats:  # fitted on the training rows only
            train = torch.as_tensor(self.X[parts["train"]])
            stats = {"mean": train.mean(0), "std": train.std(0)}
        X = (torch.as_tensor(self.X) - stats["mean"]) / stats["std"]
        Y = torch.as_tensor(self.Y, dtype=torch.float32)
        splits = {s: (X[torch.as_tensor(ix)].float(), Y[torch.as_tensor(ix)]) for s, ix in parts.items() if len(ix)}
        return Data(info=info, splits=splits, stats=stats)


def tiny_tags(seed: int, n_samples: int = 400):
    """Each label is its own half-plane of 6 gaussian features, so the labels are independent."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, 6))
    W = rng.normal(size=(6, len(LABELS)))
    return Tags(X, (X @ W > 0).astype(np.int64))


def weighted_bce(class_weights=None):
    """BCE on each label's logit; a label's weight > 1 (loss.class_weights, one per label) counts its
    missed positives more than its false alarms (pos_weight)."""
    def loss(z, y):
        w = None if class_weights is None else torch.tensor(class_weights, dtype=z.dtype, device=z.device)
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=w)
    return loss


class LabelCounts:
    """Per-label true/false positives and false negatives, and the mean loss."""

    def __init__(self, k: int, device):
        self.tp, self.fp, self.fn = (torch.zeros(k, dtype=torch.int64, device=device) for _ in range(3))
        self.loss_sum, self.n = 0.0, 0

    def update(self, out, y, loss) -> None:
        pred, y = out > 0, y > 0.5
        self.tp += (pred & y).sum(0)
        self.fp += (pred & ~y).sum(0)
        self.fn += (~pred & y).sum(0)
        self.loss_sum += float(loss) * len(y)
        self.n += len(y)

    def f1(self) -> torch.Tensor:
        return (2 * self.tp / (2 * self.tp + self.fp + self.fn).clamp(min=1)).cpu().double()

    def compute(self) -> dict[str, float]:
        f1 = self.f1()
        return {"loss": self.loss_sum / max(self.n, 1), "f1": float(f1.mean()),
                **{f"f1_{name}": float(v) for name, v in zip(LABELS, f1)}}


class MultiLabel(Task):
    """L independent yes/no labels per sample; monitor the mean per-label F1."""

    kind = "multilabel"
    output_kind = "scores"
    default_loss = "weighted_bce"
    monitor, mode = "val/f1", "max"
    metric_modes = {"loss": "min", "f1": "max", **{f"f1_{name}": "max" for name in LABELS}}
    supported = ("label_logits",)

    def outputs_for(self, wants):
        return self.info.num_classes

    def prepare(self, out, y):
        return out, y

    def new_metrics(self, device):
        return LabelCounts(self.info.num_classes, device)

    def details(self, metrics):
        return ["label", "f1"], [[name, float(v)] for name, v in zip(LABELS, metrics.f1())]


@pytest.fixture
def multilabel():
    load_all()
    DATASETS.register("tiny_tags")(tiny_tags)
    LOSSES.register("weighted_bce", wants="label_logits")(weighted_bce)
    TASKS.register("multilabel")(MultiLabel)
    yield
    DATASETS.unregister("tiny_tags")
    LOSSES.unregister("weighted_bce")
    TASKS.unregister("multilabel")


def test_a_multilabel_task_trains_and_evaluates_through_the_cli(multilabel, dlsem, tmp_path):
    r = dlsem("train", "--data", "tiny_tags", "--model", "mlp", "--epochs", "15", "--out", "ml",
              "--set", "optim.lr=0.01", "--set", "loss.class_weights=[2.0,1.0,1.0]", "--set", "data.n_samples=300")
    assert r.rc == 0, r
    summary = json.loads((tmp_path / "ml" / "summary.json").read_text())
    print("summary:", summary["task"], summary["monitor"], summary["mode"], summary["best"], summary["test"])
    assert summary["task"] == "multilabel" and summary["loss"] == "weighted_bce"
    assert (summary["monitor"], summary["mode"]) == ("val/f1", "max")  # the task's own, with its direction
    # separable labels: well above what predicting "no" everywhere (F1 0) or at random (~0.5) gets
    assert summary["test"]["test/f1"] > 0.8
    assert set(summary["test"]) >= {f"test/f1_{name}" for name in LABELS}
    # best.pt is the epoch of the highest val/f1: "max" was obeyed, not guessed from the name
    with open(tmp_path / "ml" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda row: float(row["val/f1"]))
    assert int(best["epoch"]) == summary["best_epoch"]

    e = dlsem("eval", "ml/best.pt", "--json")
    assert e.rc == 0, e
    result = json.loads(e.out)
    print("eval:", result)
    assert result["test/f1"] == pytest.approx(summary["test"]["test/f1"], abs=1e-6)


def test_the_new_task_refuses_what_does_not_fit_it(multilabel, dlsem):
    r = dlsem("train", "--data", "tiny_tags", "--set", "loss.name=ce", "--epochs", "1")
    assert r.rc == 2 and "does not fit a multilabel task" in r.err and "weighted_bce" in r.err
    r = dlsem("train", "--data", "tiny_tags", "--set", "task=regression", "--epochs", "1")
    assert r.rc == 2 and "is for multilabel (task: regression)" in r.err
    r = dlsem("train", "--data", "tiny_tags", "--set", "early_stop.monitor=val/acc", "--epochs", "1")
    assert r.rc == 2 and "val/f1_round" in r.err  # the monitors it offers are the task's
