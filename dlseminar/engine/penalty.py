"""The L1/L2 weight penalty (loss.l1, loss.l2) added to each step's loss, and the plain optimizer step
of the loops outside the Trainer.

One definition for the Trainer, the learning-rate range test and the loss-surface paths, so that all
optimise the same objective; the float arithmetic is the order the Trainer has always used.
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


def plain_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, model: torch.nn.Module, clip: float | None) -> None:
    """One step without accumulation, AMP or DDP (lr-find and surface paths; the Trainer's is step.py):
    gradients of `loss`, clipped to norm `clip` when set, then the optimizer's update."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
