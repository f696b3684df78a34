"""The L1/L2 weight penalty (loss.l1, loss.l2) added to each step's loss.

One definition for the Trainer and the learning-rate range test, so that both optimise the
same objective; the float arithmetic is the order the Trainer has always used.
"""
from __future__ import annotations

import torch


def penalty_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """Weights that the L1/L2 penalties act on: matrices and kernels, not biases or norm scales."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim > 1]


def weight_penalty(weights, l1: float, l2: float) -> torch.Tensor | float:
    """l1 * sum|W| + l2 * sum W^2 over `weights` (0.0 when both are 0)."""
    total = 0.0
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        total = total + l2 * sum(w.pow(2).sum() for w in weights)
    return total
