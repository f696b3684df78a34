"""Multi-layer perceptron: Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer."""
from __future__ import annotations

import math

from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .layers import Maxout, activation as make_activation, init_weights


def _hidden_block(n_in: int, n_out: int, act: str, k: int, batch_norm: bool, dropout: float,
                  leaky_slope: float, elu_alpha: float) -> list[nn.Module]:
    if act == "maxout":  # the k linear pieces and their max replace Linear + activation
        layers: list[nn.Module] = [Maxout(n_in, n_out, k)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
    else:
        layers = [nn.Linear(n_in, n_out)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(make_activation(act, leaky_slope, elu_alpha))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


@MODELS.register("mlp")
def mlp(in_shape, num_outputs, output_kind, hidden=(128,), activation="auto", dropout=0.0, batch_norm=False,
        init="default", maxout_k=2, leaky_slope=0.1, elu_alpha=1.0):
    """Multi-layer perceptron: hidden sizes, activation (sigmoid/tanh/relu/leaky_relu/elu/maxout), dropout, batch norm."""
    act = "relu" if activation == "auto" else activation
    if act == "softmax":
        raise ConfigError("model.activation softmax is an output activation; pick a hidden activation such as relu")
    layers: list[nn.Module] = [nn.Flatten()]
    n_in = math.prod(in_shape)
    for h in hidden:
        layers += _hidden_block(n_in, h, act, maxout_k, batch_norm, dropout, leaky_slope, elu_alpha)
        n_in = h
    layers.append(nn.Linear(n_in, num_outputs))  # scores (classification) or values (regression)
    model = nn.Sequential(*layers)
    init_weights(model, init)
    return model
