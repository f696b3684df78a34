"""The confusion matrix count that classification's and segmentation's metrics and the confusion
plot all start from."""
from __future__ import annotations

import torch


def confusion_counts(y: torch.Tensor, pred: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) int64 counts of (true, predicted) class pairs: rows the true class, columns the
    predicted. y, pred: class indices in [0, k) of one shape, on any device (the result is on the
    same one); pixels or samples to leave out are removed by the caller first."""
    return torch.bincount(y.reshape(-1) * k + pred.reshape(-1), minlength=k * k).view(k, k)
