"""Auxiliary heads (GoogLeNet's two) in training: their loss is added with loss.aux_weight, and the main
and auxiliary parts are logged apart as train/main_loss and train/aux_loss (tasks/base.py)."""
from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlseminar import config
from dlseminar.catalog import load_all
from dlseminar.data.core import DataInfo
from dlseminar.registry import MODELS, TASKS


class TwoHeads(nn.Module):
    """A classifier with one auxiliary head: (main, aux) in training, main alone in evaluation."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.body = nn.Linear(n_in, 8)
        self.main, self.aux = nn.Linear(8, n_out), nn.Linear(8, n_out)

    def forward(self, x):
        h = torch.relu(self.body(x.flatten(1)))
        return (self.main(h), self.aux(h)) if self.training else self.main(h)


def task(aux_weight: float = 0.3):
    load_all()
    cfg = config.resolve(sets=[f"loss.aux_weight={aux_weight}"])
    info = DataInfo(name="t", kind="classification", in_shape=(2,), num_classes=3, class_names=["a", "b", "c"])
    return TASKS.get("classification").fn(info, cfg)


def test_the_parts_are_the_main_and_the_mean_auxiliary_loss_over_the_epochs_samples():
    t = task(0.3)
    def heads(*rows, n):  # (main, aux1, aux2) of n identical samples
        return tuple(torch.tensor([r] * n) for r in rows)

    out = [heads([2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], n=2),
           heads([0.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.0, 1.0], n=6)]
    y = [torch.zeros(2, dtype=torch.long), torch.zeros(6, dtype=torch.long)]
    losses = [t.training_step(lambda x, o=o: o, (None, yy))[0] for o, yy in zip(out, y)]
    ce = [[F.cross_entropy(head, yy).item() for head in o] for o, yy in zip(out, y)]
    for loss, (m, a1, a2) in zip(losses, ce):
        assert loss.item() == pytest.approx(m + 0.3 * (a1 + a2))  # what training minimises is unchanged
    logs = t.train_logs()
    assert logs["main_loss"] == pytest.approx((2 * ce[0][0] + 6 * ce[1][0]) / 8)  # weighted by samples
    assert logs["aux_loss"] == pytest.approx((2 * (ce[0][1] + ce[0][2]) / 2 + 6 * (ce[1][1] + ce[1][2]) / 2) / 8)
    assert t.train_logs() == {}  # each epoch starts afresh


def test_a_model_without_auxiliary_heads_logs_nothing_extra_and_a_skipped_batch_is_left_out():
    t = task()
    t.training_step(lambda x: torch.zeros(4, 3), (None, torch.zeros(4, dtype=torch.long)))
    assert t.train_logs() == {}
    nan = torch.full((2, 3), float("nan"))
    t.training_step(lambda x: (nan, nan), (None, torch.zeros(2, dtype=torch.long)))
    t.training_step(lambda x: (torch.zeros(2, 3), torch.zeros(2, 3)), (None, torch.zeros(2, dtype=torch.long)))
    logs = t.train_logs()
    assert logs["main_loss"] == pytest.approx(torch.log(torch.tensor(3.0)).item())  # the finite batch only


@pytest.fixture
def two_heads():
    load_all()
    MODELS.register("two_heads")(lambda in_shape, num_outputs, output_kind: TwoHeads(in_shape[0], num_outputs))
    yield
    MODELS.unregister("two_heads")


def test_metrics_csv_has_the_auxiliary_loss_apart(two_heads, dlsem, tmp_path):
    r = dlsem("train", "--data", "moons", "--model", "two_heads", "--epochs", "3", "--out", "run",
              "--set", "loss.aux_weight=0.5")
    assert r.rc == 0, r
    with open(tmp_path / "run/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for row in rows:
        main, aux = float(row["train/main_loss"]), float(row["train/aux_loss"])
        assert float(row["train/loss"]) == pytest.approx(main + 0.5 * aux, rel=1e-5)  # one head: weight x aux
        assert main != aux  # two heads, two losses
