"""Faster R-CNN (Ren et al. 2015) assembled from torchvision's detection parts on a backbone of our zoo.

The R-CNN lesson, stage by stage (`dlsem models show fasterrcnn` prints them with sizes):
  1. backbone: the zoo network's convolutional part (model.backbone: cnn, resnet*, vgg*,
     alexnet; classifier head removed, and for cnn/vgg/alexnet the last pool too) turns the
     image into a feature map; with model.fpn a FeaturePyramidNetwork over its last stages
     gives one map per scale (torchvision's BackboneWithFPN);
  2. RPN (region proposal network): at every feature-map position, anchors of model.anchor_sizes
     x model.aspect_ratios are scored object / background and their boxes refined; NMS keeps
     the best model.proposals (torchvision AnchorGenerator + RPNHead);
  3. RoI align: each proposal's features are pooled to 7x7 (MultiScaleRoIAlign): R-CNN's
     "warped region", cut from the shared feature map instead of re-running the CNN per region;
  4. box head: two fully connected layers (model.head_width) -> per-region class scores
     (background + classes) and per-class box refinements;
  5. post-processing: softmax, scores below model.score_thresh dropped, NMS per class at
     model.nms_iou, the best model.detections_per_img kept.

In training the model takes (images, targets) and returns its four losses; in evaluation it
takes images and returns one {"boxes", "labels", "scores"} dict per image (torchvision's
GeneralizedRCNN contract). Images arrive normalised by the data (see datasets/detection.py),
so the built-in transform only resizes (mean 0, std 1): short side model.min_size, long side
at most model.max_size, both defaulting to the data's own size so small images stay small.

This module registers the detectors and cuts the backbone; stages 1-5 are put together in
rcnn.py, which needs torchvision's detection code and is imported only when a detector is built.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import TYPE_CHECKING

from torch import nn

from ..errors import ConfigError
from ..registry import MODELS, backbones, suggest
from .pretrained import image_shape

if TYPE_CHECKING:
    from .rcnn import RCNN

POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _sequential_body(features: nn.Sequential) -> tuple[nn.Sequential, list[str]]:
    """A plain conv stack without its last pool (keeps resolution), and the layer ending each stage
    (the one before each pool, and the last)."""
    layers = list(features)
    while layers and isinstance(layers[-1], (*POOLS, nn.Identity, nn.Flatten, nn.Dropout, nn.Linear)):
        layers.pop()
    ends = [str(i - 1) for i, m in enumerate(layers) if isinstance(m, POOLS) and i > 0] + [str(len(layers) - 1)]
    return nn.Sequential(*layers), list(dict.fromkeys(ends))


def _resnet_body(model) -> tuple[nn.Sequential, list[str]]:
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(OrderedDict((n, getattr(model, n)) for n in names)), names[4:]


# How to cut a zoo model down to its convolutional part. A zoo model offers itself as a detector
# backbone by naming one of these in its registration (MODELS.register("resnet18", backbone="resnet")),
# so model.backbone's choices are read from the model registry (registry.backbones()).
BODIES = {"sequential": _sequential_body, "resnet": _resnet_body, "features": lambda m: _sequential_body(m.features)}


def _zoo_body(name: str, shape, options: dict) -> tuple[nn.Module, list[str]]:
    """The zoo model `name` built for a `shape` input, cut down to its convolutional part."""
    names = backbones()
    if name not in names:
        raise ConfigError(f"model.backbone {name!r} is not one of {', '.join(names)}{suggest(name, names)}")
    entry = MODELS.get(name)
    params = inspect.signature(entry.fn).parameters
    if options.get("pretrained") and "pretrained" not in params:
        raise ConfigError(f"model.pretrained: backbone {name!r} has no pretrained weights (it is ours); "
                          f"use resnet*, vgg* or alexnet, or set model.pretrained=false")
    classifier = entry.fn(in_shape=shape, num_outputs=1, output_kind="scores",
                          **{k: v for k, v in options.items() if k in params})
    return BODIES[entry.meta["backbone"]](classifier)


def build_detector(in_shape, num_outputs: int, output_kind: str, name: str, backbone: str, fpn: bool, fpn_width: int,
                   anchor_sizes, aspect_ratios, min_size, max_size, rpn_batch: int, proposals, roi_batch: int,
                   head_width: int, score_thresh: float, nms_iou: float, detections_per_img: int, **zoo) -> RCNN:
    if output_kind != "detections":
        raise ConfigError(f"model {name!r} is a detector; train it on a detection dataset (shapes_det, coco, voc_det)")
    c, h, w = image_shape(in_shape, name)
    if num_outputs < 2:
        raise ConfigError(f"model {name!r} needs at least one object class besides the background")
    lo, hi = min_size or min(h, w), max_size or max(h, w)
    if hi < lo:
        raise ConfigError(f"model.max_size ({hi}) must be >= model.min_size ({lo})")
    body, ends = _zoo_body(backbone, (c, lo, lo), zoo)
    from .rcnn import assemble  # torchvision's detection parts load only when a detector is built

    return assemble(body, ends, backbone=backbone, c=c, lo=lo, hi=hi, num_outputs=num_outputs, fpn=fpn,
                    fpn_width=fpn_width, anchor_sizes=anchor_sizes, aspect_ratios=aspect_ratios, rpn_batch=rpn_batch,
                    proposals=proposals, roi_batch=roi_batch, head_width=head_width, score_thresh=score_thresh,
                    nms_iou=nms_iou, detections_per_img=detections_per_img)


@MODELS.register("fasterrcnn", outputs=("detections",))
def fasterrcnn(in_shape, num_outputs, output_kind, backbone="cnn", fpn=False, fpn_width=128, anchor_sizes=None,
               aspect_ratios=(0.5, 1.0, 2.0), min_size=None, max_size=None, rpn_batch=128, proposals=(300, 100),
               roi_batch=128, head_width=256, score_thresh=0.05, nms_iou=0.5, detections_per_img=100,
               widths=(8, 16), pool="max", activation="auto", batch_norm=False, stem="auto", pretrained=False,
               init="default"):
    """Faster R-CNN (torchvision parts): backbone from the zoo -> RPN proposals -> RoI align -> classify + refine -> NMS."""
    kw = dict(locals())
    return build_detector(name="fasterrcnn", **kw)


def _short(backbone: str, fpn: bool):
    """A registered builder: fasterrcnn with model.backbone (and model.fpn) fixed."""

    def build(in_shape, num_outputs, output_kind, **options):
        return build_detector(in_shape=in_shape, num_outputs=num_outputs, output_kind=output_kind, name=name,
                              backbone=backbone, fpn=fpn, **options)

    name = f"rcnn_{backbone}{'_fpn' if fpn else ''}"
    params = [p for n, p in inspect.signature(fasterrcnn).parameters.items() if n not in ("backbone", "fpn")]
    build.__signature__ = inspect.Signature(params)  # what call_builder reads: the model.* keys it takes
    build.__name__ = name
    build.__doc__ = (f"Faster R-CNN on {backbone}{' + FPN' if fpn else ''} "
                     f"(fasterrcnn, model.backbone={backbone}{', model.fpn=true' if fpn else ''}).")
    MODELS.register(name, outputs=("detections",))(build)


for _b, _f in (("cnn", False), ("resnet18", False), ("resnet18", True), ("resnet50", True), ("vgg11", False),
               ("vgg16", False), ("alexnet", False)):
    _short(_b, _f)
