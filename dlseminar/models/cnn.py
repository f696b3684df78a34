"""The lesson's small CNN and the historical LeNet-5, written out by hand (they are what we teach).

cnn: per width in model.widths: Conv2d 3x3 (padding 1) -> [BatchNorm2d] -> activation -> 2x2
pool (max or avg; skipped once the map is 1 px), then flatten -> [Dropout] -> Linear. With the
default widths [8, 16] on 1x28x28 the maps are 8x14x14 then 16x7x7 (784 features).

lenet5: LeCun et al. 1998: conv5x5 6 -> pool -> conv5x5 16 -> pool -> 120 -> 84 -> classes,
tanh and 2x2 average pooling ("subsampling"; the paper's trainable coefficients and sparse
C3 connections are left out, as usual). Padding makes any input size work:
  - conv1 is padded by 2 when the input is below 32 px (the usual LeNet-on-MNIST choice), so
    1x28x28 and 1x32x32 both reach 16x5x5 = 400 features and 61,706 parameters (10 classes);
  - conv2 is padded by 2 as well when its input is below 10 px (8x8 -> 8 -> 4 -> 4 -> 2 px,
    64 features), and a pool is skipped once the map is 1 px.
"""
from __future__ import annotations

from torch import nn

from ..registry import MODELS
from .layers import activation as make_activation
from .layers import init_weights
from .pretrained import image_shape


def _pool(kind: str) -> nn.Module:
    return nn.MaxPool2d(2) if kind == "max" else nn.AvgPool2d(2)


@MODELS.register("cnn", backbone="sequential")
def cnn(in_shape, num_outputs, output_kind, widths=(8, 16), pool="max", activation="auto", batch_norm=False,
        dropout=0.0, init="default"):
    """Small CNN (the lesson's): conv3x3 -> relu -> 2x2 pool per model.widths, then one linear layer."""
    c, h, w = image_shape(in_shape, "cnn")
    act = "relu" if activation == "auto" else activation
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Conv2d(c, width, kernel_size=3, padding=1))  # (B, width, h, w)
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(make_activation(act))
        if min(h, w) >= 2:
            layers.append(_pool(pool))
            h, w = h // 2, w // 2
        c = width
    layers.append(nn.Flatten())  # (B, c * h * w)
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c * h * w, num_outputs))
    model = nn.Sequential(*layers)
    init_weights(model, init)
    return model


@MODELS.register("lenet5")
def lenet5(in_shape, num_outputs, output_kind, activation="auto", dropout=0.0, init="default"):
    """LeNet-5 (LeCun 1998): two 5x5 conv + avg-pool stages, then 120 -> 84 -> classes; tanh."""
    c, h, w = image_shape(in_shape, "lenet5")
    act = "tanh" if activation == "auto" else activation
    layers: list[nn.Module] = []
    for width, min_size in ((6, 32), (16, 10)):
        pad = 2 if min(h, w) < min_size else 0
        layers += [nn.Conv2d(c, width, kernel_size=5, padding=pad), make_activation(act)]
        h, w = h + 2 * pad - 4, w + 2 * pad - 4  # (B, width, h, w)
        if min(h, w) >= 2:
            layers.append(nn.AvgPool2d(2))
            h, w = h // 2, w // 2
        c = width
    layers.append(nn.Flatten())  # (B, 16 * h * w): 400 at 28 and 32 px
    for n_in, n_out in ((c * h * w, 120), (120, 84)):
        layers += [nn.Linear(n_in, n_out), make_activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(84, num_outputs))
    model = nn.Sequential(*layers)
    init_weights(model, init)
    return model
