"""Regression: real-valued targets (B, T); MSE, MAE, RMSE and R^2 from exact running sums.

With data.standardize the model learns the standardised target (y - mean) / std, mean and std
fitted on the training split (DataInfo.target_mean/target_std, stored in every checkpoint): the
loss, and so `loss` in the logs, is on that scale. Predictions and the metrics mse, rmse, mae and
r2 are in the data's own units.
"""
from __future__ import annotations

import torch

from ...registry import TASKS
from ..base import Task


class RegressionMetrics:
    """Running float64 sums on the device, so the result does not depend on batch size."""

    def __init__(self, device, decode=lambda o: o):
        self.decode = decode  # model outputs -> predictions in the data's units
        z = lambda: torch.zeros((), dtype=torch.float64, device=device)  # noqa: E731
        self.n, self.sse, self.sae, self.sy, self.syy, self.loss_sum = z(), z(), z(), z(), z(), z()
        self.rows = 0

    def update(self, out, y, loss) -> None:
        o, t = self.decode(out.detach().double()), y.double()
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
    metric_modes = {"loss": "min", "mse": "min", "rmse": "min", "mae": "min", "r2": "max"}
    supported = ("target_values",)

    def __init__(self, info, cfg):
        super().__init__(info, cfg)
        mean, std = getattr(info, "target_mean", None), getattr(info, "target_std", None)
        # float64, so that the undoing is exact; None: targets as they are (no standardize, older checkpoints)
        self.target_scale = (torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)) \
            if mean and std else None
        self._on: dict = {}

    def _scale(self, device, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        if key not in self._on:
            self._on[key] = tuple(t.to(device, dtype) for t in self.target_scale)
        return self._on[key]

    def outputs_for(self, wants: str) -> int:
        return 1  # one target column (y is stored as (N, 1))

    def prepare(self, out, y):
        """The loss compares the model's output with the standardised target."""
        if self.target_scale is None:
            return out, y
        mean, std = self._scale(y.device, y.dtype)  # the targets' float32: no float64 in the training step
        return out, (y - mean) / std

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Model outputs -> predictions in the data's units (float64 when the target is standardised)."""
        if self.target_scale is None:
            return out
        mean, std = self._scale(out.device)
        return out.double() * std + mean

    def predict(self, model, x: torch.Tensor) -> torch.Tensor:
        return self.decode(model(x))

    def new_metrics(self, device):
        return RegressionMetrics(device, self.decode)
