"""The GoogLeNet network itself: torchvision's, returning a plain (main, aux1, aux2) tuple in training.

It subclasses torchvision's classes, so it lives apart from googlenet.py (the registered builder):
registering the zoo does not import torchvision, so a run whose model does not need it never pays
for it; this module is imported only when a googlenet is built.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.googlenet import BasicConv2d


class GoogLeNet(torchvision.models.GoogLeNet):
    """torchvision's GoogLeNet returning a plain (main, aux1, aux2) tuple when training with aux heads."""

    def forward(self, x: torch.Tensor):
        x = self._transform_input(x)
        x, aux2, aux1 = self._forward(x)  # torchvision's order: main, head after 4d, head after 4a
        if self.training and self.aux_logits:
            return x, aux1, aux2
        return x


def _trunc_normal_init(module: nn.Module) -> None:
    """torchvision's GoogLeNet init for a replaced block."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def network(in_channels: int, stem: str, num_outputs: int, aux: bool, transform_input: bool,
            dropout: float) -> GoogLeNet:
    """GoogLeNet with torchvision's init; stem 'small' (3x3 stride-1 conv1, no maxpool1/2) or 'imagenet'."""
    model = GoogLeNet(num_classes=num_outputs, aux_logits=aux, transform_input=transform_input,
                      init_weights=True, dropout=dropout)
    if stem == "small":
        model.conv1 = BasicConv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
        model.maxpool1 = nn.Identity()
        model.maxpool2 = nn.Identity()  # (B, 192, H, W) enters inception3a
        _trunc_normal_init(model.conv1)
    elif in_channels != 3:
        model.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        _trunc_normal_init(model.conv1)
    return model
