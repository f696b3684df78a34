"""AlexNet (Krizhevsky et al. 2012, torchvision's one-GPU variant), built on torchvision.models.alexnet.

stem 'imagenet' is torchvision's network unchanged: 11x11 stride-4 first conv, three 3x3
stride-2 overlapping max-pools, a 6x6 adaptive pool and the 9216 -> 4096 -> 4096 -> classes
classifier (61.1M parameters, 58.6M of them in the classifier). It needs >= 63 px inputs.

stem 'small' (8-64 px inputs):
  - the first conv becomes 3x3 stride 1 padding 1 (still 64 filters), freshly initialised;
  - the EARLIEST of the three overlapping max-pools that the input cannot afford are dropped
    (8 px keeps 2; 28 px and up keep all 3: 32 -> 15 -> 7 -> 3 px);
  - the 6x6 adaptive pool becomes a 1x1 global average pool and the classifier becomes
    Dropout, 256 -> 512, ReLU, Dropout, 512 -> 512, ReLU, 512 -> classes (same layout as
    torchvision's, about 0.4M parameters instead of 58.6M; 2.8M in all for 10 classes).
in_channels != 3 gets a fresh first conv either way. model.dropout > 0 sets the classifier's
dropout; 0 keeps torchvision's 0.5. Initialisation is PyTorch's default, as in torchvision.
model.init other than 'default' (torchvision's init) re-initialises every conv/linear weight,
before any pretrained weights are copied in.
With model.pretrained (local cache only, see pretrained.py) conv2-5 are ImageNet's in both
stems; the small stem's conv1 and classifier, and the head, stay freshly initialised.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS
from .layers import init_weights
from .pretrained import check_input, drop_early_pools, image_shape, load_pretrained, new_conv, resolve_stem

SMALL_HIDDEN = 512


def _small_head(num_outputs: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(256, SMALL_HIDDEN), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(SMALL_HIDDEN, SMALL_HIDDEN), nn.ReLU(inplace=True),
        nn.Linear(SMALL_HIDDEN, num_outputs),
    )


@MODELS.register("alexnet", backbone="features")
def alexnet(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, init="default"):
    """AlexNet (torchvision); stem small: 3x3 conv1, fewer pools, 512-wide classifier."""
    import torchvision  # here, not at the top: a run whose model does not need torchvision never imports it

    c, h, w = image_shape(in_shape, "alexnet")
    stem = resolve_stem(stem, (c, h, w))
    p = dropout if dropout > 0 else 0.5
    if stem == "imagenet":
        model = torchvision.models.alexnet(weights=None, num_classes=num_outputs, dropout=p)
        if c != 3:
            model.features[0] = new_conv(model.features[0], c)
    else:
        # The 9216 -> 4096 classifier is thrown away: create the model on the meta device (free)
        # and materialise only the feature layers, with PyTorch's default init as torchvision.
        with torch.device("meta"):
            model = torchvision.models.alexnet(weights=None, num_classes=num_outputs, dropout=p)
        model.features = model.features.to_empty(device="cpu")
        for m in model.features:
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
        model.features[0] = new_conv(model.features[0], c, kernel_size=3, stride=1, padding=1)
        drop_early_pools(model.features, min(h, w), kernel=3, stride=2)
        model.avgpool = nn.AdaptiveAvgPool2d(1)  # (B, 256, h, w) -> (B, 256, 1, 1)
        model.classifier = _small_head(num_outputs, p)
    check_input(model, (c, h, w), "alexnet", stem)
    init_weights(model, init)  # 'default' keeps torchvision's
    if pretrained:
        load_pretrained(model, "alexnet", "features.0.weight")
    return model
