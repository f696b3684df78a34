"""The perceptron: y_hat = sigma(w0 + sum_i x_i * w_i), one neuron per output."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .layers import activation as make_activation
from .layers import init_weights


class Perceptron(nn.Module):
    def __init__(self, in_features: int, num_outputs: int, out_activation: str = "identity"):
        super().__init__()
        self.linear = nn.Linear(in_features, num_outputs)  # weight (out, k), bias w0 (out,)
        self.act = make_activation(out_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x.flatten(1)))

    def explain(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                target_mean: torch.Tensor | None = None, target_std: torch.Tensor | None = None) -> dict:
        """The learned w0 and w in the data's original units (undoing standardisation).

        With x' = (x - mean) / std the neuron computes w0 + w.x' = (w0 - sum w*mean/std) + (w/std).x.
        A standardised regression target y' = (y - tm) / ts scales both back: y = tm + ts * (that).
        """
        w = self.linear.weight.detach().double().cpu()
        b = self.linear.bias.detach().double().cpu()
        if mean is not None and std is not None:
            m, s = mean.double().cpu().flatten(), std.double().cpu().flatten()
            w, b = w / s, b - (w / s * m).sum(1)
        if target_mean is not None and target_std is not None:
            tm, ts = target_mean.double().cpu().flatten(), target_std.double().cpu().flatten()
            w, b = w * ts[:, None], b * ts + tm  # one (mean, std) per output
        rows = [{"w0": round(float(b[i]), 6), "w": [round(float(v), 6) for v in w[i]]} for i in range(len(b))]
        return {"weights": rows[0] if len(rows) == 1 else rows}


@MODELS.register("perceptron")
def perceptron(in_shape, num_outputs, output_kind, activation="auto", init="default"):
    """Single-layer perceptron y = sigma(w0 + x.w); sigmoid/softmax for classes, identity for regression."""
    if output_kind == "scores":
        # Classification: the model returns w0 + x.w and the task applies the link in a
        # numerically stable way (sigmoid inside BCE-with-logits, softmax inside CE).
        link = "sigmoid" if num_outputs == 1 else "softmax"
        if activation not in ("auto", link):
            raise ConfigError(
                f"model.activation {activation!r} does not fit a perceptron with {num_outputs} class output(s); "
                f"use auto or {link} (or task: regression)"
            )
        act = "identity"
    else:
        if activation == "softmax":
            raise ConfigError("model.activation softmax only fits classification; use identity, sigmoid or tanh")
        act = "identity" if activation == "auto" else activation
        if act == "maxout":
            raise ConfigError("model.activation maxout needs hidden units; use model mlp")
    model = Perceptron(math.prod(in_shape), num_outputs, act)
    # A classifying perceptron starts from zero weights, as Rosenblatt's did: one layer has no symmetry
    # to break, and the start is chance (loss ln 2) instead of a random line that may point the wrong
    # way (on fish, PyTorch's random start sat at test acc 0.20 after 30 epochs of Adam 1e-3; from
    # zeros, 0.93). Regression keeps PyTorch's start: its lessons' figures (diabetes) were measured so.
    init_weights(model, "zeros" if init == "default" and output_kind == "scores" else init)
    return model
