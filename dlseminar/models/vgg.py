"""VGG-11/13/16/19, plain and with batch norm (Simonyan & Zisserman 2014), built on torchvision.

stem 'imagenet' is torchvision's network unchanged: five conv stages each ending in a 2x2
max-pool (224 -> 7 px), a 7x7 adaptive average pool and the 25088 -> 4096 -> 4096 -> classes
classifier (120M of VGG-16's 138M parameters). It needs inputs of at least 32 px.

stem 'small' (8-64 px inputs) keeps torchvision's conv stages and weights' names but:
  - drops the EARLIEST max-pools the input cannot afford (8 px keeps the last 3, 28 px the
    last 4, 32 px and up all 5), so every stage still sees >= 1 px;
  - replaces the 7x7 adaptive pool by a 1x1 global average pool and the classifier by
    512 -> 512 -> 512 -> classes (same layout: Linear, ReLU, Dropout, Linear, ReLU, Dropout,
    Linear), about 0.5M parameters instead of 120M (VGG-16 for CIFAR-10: 15.2M in all).
The first conv is already 3x3 stride 1, so the small stem does not change it; in_channels
!= 3 gets a fresh first conv either way. model.dropout > 0 sets the classifier's dropout;
0 keeps torchvision's 0.5.
model.init other than 'default' (torchvision's init) re-initialises every conv/linear weight,
before any pretrained weights are copied in.
With model.pretrained (local cache only, see pretrained.py) every conv is ImageNet's, in both
stems; the small classifier and the last fc (unless num_outputs is 1000) stay fresh.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS
from .layers import init_weights
from .pretrained import check_input, drop_early_pools, image_shape, load_pretrained, new_conv, resolve_stem

_CFG = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}  # torchvision.models.vgg.cfgs
SMALL_HIDDEN = 512


def _small_vgg(arch: str, num_outputs: int, dropout: float) -> nn.Module:
    """torchvision's VGG with the small classifier, never allocating the 120M-parameter one."""
    import torchvision  # here, not at the top: a run whose model does not need torchvision never imports it

    vgg = torchvision.models.vgg
    features = vgg.make_layers(vgg.cfgs[_CFG[arch.removesuffix("_bn")]], batch_norm=arch.endswith("_bn"))
    # The 25088 -> 4096 classifier is thrown away, so create it on the meta device (no memory,
    # no init time). `features` already exist on the CPU and still get torchvision's init loop.
    with torch.device("meta"):
        model = torchvision.models.VGG(features, num_classes=num_outputs, dropout=dropout)
    model.avgpool = nn.AdaptiveAvgPool2d(1)  # (B, 512, h, w) -> (B, 512, 1, 1)
    model.classifier = nn.Sequential(
        nn.Linear(512, SMALL_HIDDEN), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(SMALL_HIDDEN, SMALL_HIDDEN), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(SMALL_HIDDEN, num_outputs),
    )
    for m in model.classifier:
        if isinstance(m, nn.Linear):  # torchvision's VGG init
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def _vgg(arch: str, in_shape, num_outputs: int, dropout: float, stem: str, pretrained: bool, init: str) -> nn.Module:
    c, h, w = image_shape(in_shape, arch)
    stem = resolve_stem(stem, (c, h, w))
    p = dropout if dropout > 0 else 0.5
    if stem == "imagenet":
        import torchvision  # see _small_vgg

        model = torchvision.models.get_model(arch, weights=None, num_classes=num_outputs, dropout=p)
    else:
        model = _small_vgg(arch, num_outputs, p)
        drop_early_pools(model.features, min(h, w), kernel=2, stride=2)
    if c != 3:
        model.features[0] = new_conv(model.features[0], c)
        nn.init.kaiming_normal_(model.features[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(model.features[0].bias)
    check_input(model, (c, h, w), arch, stem)
    init_weights(model, init)  # 'default' keeps torchvision's
    if pretrained:
        load_pretrained(model, arch, "features.0.weight")
    return model


@MODELS.register("vgg11", backbone="features")
def vgg11(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-11 (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg11", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg13", backbone="features")
def vgg13(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-13 (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg13", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg16", backbone="features")
def vgg16(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-16 (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg16", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg19", backbone="features")
def vgg19(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-19 (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg19", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg11_bn", backbone="features")
def vgg11_bn(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-11 with batch norm (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg11_bn", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg13_bn", backbone="features")
def vgg13_bn(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-13 with batch norm (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg13_bn", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg16_bn", backbone="features")
def vgg16_bn(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-16 with batch norm (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg16_bn", in_shape, num_outputs, dropout, stem, pretrained, init)


@MODELS.register("vgg19_bn", backbone="features")
def vgg19_bn(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """VGG-19 with batch norm (torchvision); stem small: fewer pools, global pool, 512-wide classifier."""
    return _vgg("vgg19_bn", in_shape, num_outputs, dropout, stem, pretrained, init)
