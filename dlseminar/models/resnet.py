"""ResNet-18/34/50 (He et al. 2015), built on torchvision.models.resnet*.

stem 'imagenet' is torchvision's network unchanged: 7x7 stride-2 conv1 and a 3x3 stride-2
max-pool (224 px -> 56 px before layer1). stem 'small' is the CIFAR-style stem for 8-64 px
inputs: conv1 becomes a 3x3 stride-1 conv (padding 1) and the max-pool is removed, so layer1
sees the full-resolution image (32 px -> 32, 16, 8, 4 px in layer1..4). Every other layer,
the global average pool and the fc head are torchvision's. in_channels != 3 gets a fresh
conv1 of the same geometry (averaged RGB filters when pretrained, see pretrained.py).
model.init other than 'default' (torchvision's init) re-initialises every conv/linear weight,
before any pretrained weights are copied in.
With model.pretrained (local cache only, see pretrained.py) the small stem's 3x3 conv1 and
the fc head (unless num_outputs is 1000) stay freshly initialised; all else is ImageNet's.
"""
from __future__ import annotations

from torch import nn

from ..registry import MODELS
from .layers import init_weights
from .pretrained import check_input, image_shape, load_pretrained, new_conv, resolve_stem


def _resnet(arch: str, in_shape, num_outputs: int, stem: str, pretrained: bool, init: str) -> nn.Module:
    import torchvision  # here, not at the top: a run whose model does not need torchvision never imports it

    c, h, w = image_shape(in_shape, arch)
    stem = resolve_stem(stem, (c, h, w))
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_outputs)
    if stem == "small" or c != 3:
        geometry = dict(kernel_size=3, stride=1, padding=1) if stem == "small" else {}
        model.conv1 = new_conv(model.conv1, c, **geometry)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init
    if stem == "small":
        model.maxpool = nn.Identity()  # (B, 64, H, W) goes straight into layer1
    check_input(model, (c, h, w), arch, stem)
    init_weights(model, init)  # 'default' keeps torchvision's
    if pretrained:
        load_pretrained(model, arch, "conv1.weight")
    return model


@MODELS.register("resnet18", backbone="resnet")
def resnet18(in_shape, num_outputs, output_kind, stem="auto", pretrained=False, init="default"):
    """ResNet-18 (torchvision); stem small: 3x3 stride-1 conv1, no max-pool (CIFAR-style)."""
    return _resnet("resnet18", in_shape, num_outputs, stem, pretrained, init)


@MODELS.register("resnet34", backbone="resnet")
def resnet34(in_shape, num_outputs, output_kind, stem="auto", pretrained=False, init="default"):
    """ResNet-34 (torchvision); stem small: 3x3 stride-1 conv1, no max-pool (CIFAR-style)."""
    return _resnet("resnet34", in_shape, num_outputs, stem, pretrained, init)


@MODELS.register("resnet50", backbone="resnet")
def resnet50(in_shape, num_outputs, output_kind, stem="auto", pretrained=False, init="default"):
    """ResNet-50, bottleneck blocks (torchvision); stem small: 3x3 stride-1 conv1, no max-pool."""
    return _resnet("resnet50", in_shape, num_outputs, stem, pretrained, init)
