"""Activations and small layers shared by the tabular models (the lesson's activation zoo)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class Maxout(nn.Module):
    """max(w1.x + b1, ..., wk.x + bk) per output unit: a learned piecewise-linear activation."""

    def __init__(self, in_features: int, out_features: int, k: int = 2):
        super().__init__()
        self.out_features, self.k = out_features, k
        self.linear = nn.Linear(in_features, out_features * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (B, out*k)
        return z.view(*z.shape[:-1], self.out_features, self.k).amax(-1)  # (B, out)


def activation(name: str, leaky_slope: float = 0.1, elu_alpha: float = 1.0) -> nn.Module:
    """A fresh activation module by name (maxout is a layer, built by the model instead)."""
    table = {
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(leaky_slope),
        "elu": lambda: nn.ELU(elu_alpha),
        "identity": nn.Identity,
    }
    if name not in table:
        raise ConfigError(f"model.activation {name!r} is not available here; choose from {', '.join(table)}")
    return table[name]()


_INITS = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "normal": lambda w: nn.init.normal_(w, std=0.01),
    "zeros": nn.init.zeros_,
}


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise every Linear/Conv weight (biases to zero); 'default' keeps PyTorch's."""
    if scheme == "default":
        return
    fn = _INITS[scheme]
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fn(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
