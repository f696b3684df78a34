"""Loss functions. Each declares the form of prediction and target it wants; the Task
turns its raw outputs and labels into that form (see Task.prepare):

  index_logits    scores (B, C) and class indices (B,)
  index_logprobs  log-probabilities (B, C) and class indices (B,)
  target_logits   scores and float targets of the same shape (sigmoid applied inside the loss)
  target_values   predictions (probabilities for classes, values for regression) and float targets
  pixel_logits    scores (B, C, H, W) and class-index masks (B, H, W) where 255 = ignore (segmentation only)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import LOSSES


class _Weights:
    """loss.class_weights as a tensor on the device of the scores (None when not set)."""

    def __init__(self, values):
        self.cpu = torch.tensor(values, dtype=torch.float32) if values else None
        self.on = self.cpu

    def __call__(self, z: torch.Tensor):
        if self.on is not None and self.on.device != z.device:
            self.on = self.cpu.to(z.device)
        return self.on


@LOSSES.register("ce", wants="index_logits")
def ce(label_smoothing=0.0, class_weights=()):
    """Cross-entropy H = -sum y log softmax(z), optional label smoothing and class weights."""
    w = _Weights(class_weights)
    return lambda z, y: F.cross_entropy(z, y, weight=w(z), label_smoothing=label_smoothing)


@LOSSES.register("nll", wants="index_logprobs")
def nll(class_weights=()):
    """Negative log-likelihood of the true class under log-softmax outputs (optional class weights)."""
    w = _Weights(class_weights)
    return lambda z, y: F.nll_loss(z, y, weight=w(z))


@LOSSES.register("bce", wants="target_logits")
def bce():
    """Binary cross-entropy on sigmoid outputs (one output for 2 classes; one-vs-rest otherwise)."""
    return F.binary_cross_entropy_with_logits


@LOSSES.register("mse", wants="target_values")
def mse():
    """Mean squared error (1/N) sum (y - y_hat)^2; on classes: between probabilities and one-hot labels."""
    return F.mse_loss


@LOSSES.register("mae", wants="target_values")
def mae():
    """Mean absolute error (1/N) sum |y - y_hat| (L1 loss)."""
    return F.l1_loss


@LOSSES.register("huber", wants="target_values")
def huber(huber_delta=1.0):
    """Huber loss: quadratic below loss.huber_delta, linear above (robust to outliers)."""
    return lambda p, t: F.huber_loss(p, t, delta=huber_delta)


IGNORE = 255  # mask value that counts in neither the loss nor the metrics


def soft_dice(z: torch.Tensor, y: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over classes of 2|P.T| / (|P| + |T|), P = softmax(z) per pixel, T = one-hot(y); 255 ignored."""
    c = z.shape[1]
    valid = (y != IGNORE).unsqueeze(1)  # (B, 1, H, W)
    p = F.softmax(z, 1) * valid  # (B, C, H, W)
    t = F.one_hot(y.masked_fill(y == IGNORE, 0), c).permute(0, 3, 1, 2) * valid  # (B, C, H, W)
    inter = (p * t).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()


@LOSSES.register("dice", wants="pixel_logits")
def dice():
    """Soft Dice loss 1 - mean_c 2|P.T|/(|P|+|T|) over the batch's pixels (segmentation)."""
    return soft_dice


@LOSSES.register("ce_dice", wants="pixel_logits")
def ce_dice(label_smoothing=0.0, class_weights=()):
    """Pixel-wise cross-entropy (optional class weights) plus soft Dice (segmentation; 255 = ignore in both)."""
    w = _Weights(class_weights)
    return lambda z, y: (F.cross_entropy(z, y, weight=w(z), ignore_index=IGNORE, label_smoothing=label_smoothing)
                         + soft_dice(z, y))
