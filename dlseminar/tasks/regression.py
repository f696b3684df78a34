"""Regression: real-valued targets (B, T); MSE, MAE, RMSE and R^2 from exact running sums."""
from __future__ import annotations

import torch

from ..registry import TASKS
from .base import Task


class RegressionMetrics:
    """Running float64 sums on the device, so the result does not depend on batch size."""

    def __init__(self, device):
        z = lambda: torch.zeros((), dtype=torch.float64, device=device)  # noqa: E731
        self.n, self.sse, self.sae, self.sy, self.syy, self.loss_sum = z(), z(), z(), z(), z(), z()
        self.rows = 0

    def update(self, out, y, loss) -> None:
        o, t = out.detach().double(), y.double()
        self.n += t.numel()
        self.sse += (o - t).pow(2).sum()
        self.sae += (o - t).abs().sum()
        self.sy += t.sum()
        self.syy += t.pow(2).sum()
        self.loss_sum += loss.detach().double() * len(y)
        self.rows += len(y)

    def compute(self) -> dict[str, float]:
        n = max(float(self.n), 1.0)
        ss_tot = float(self.syy) - float(self.sy) ** 2 / n
        mse = float(self.sse) / n
        return {
            "loss": float(self.loss_sum) / max(self.rows, 1),
            "mse": mse,
            "rmse": mse ** 0.5,
            "mae": float(self.sae) / n,
            "r2": 1.0 - float(self.sse) / ss_tot if ss_tot > 0 else float("nan"),
        }


@TASKS.register("regression")
class Regression(Task):
    """Predict real values; monitor val/loss."""

    kind = "regression"
    output_kind = "values"
    default_loss = "mse"
    monitor, mode = "val/loss", "min"
    supported = ("target_values",)

    def outputs_for(self, wants: str) -> int:
        return 1  # one target column (y is stored as (N, 1))

    def prepare(self, out, y):
        return out, y

    def new_metrics(self, device):
        return RegressionMetrics(device)
