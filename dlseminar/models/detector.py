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
"""
from __future__ import annotations

import inspect
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from ..errors import ConfigError
from ..registry import MODELS, backbones, suggest
from .pretrained import image_shape

ROI_SIZE = 7  # RoI align output (7 x 7 per region, as in the paper's VGG-16 head)
FPN_MIN_STRIDE = 4  # the finest pyramid level (ResNet: layer1)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


class RCNN(FasterRCNN):
    """torchvision's FasterRCNN, plus a text description of its stages and their intermediate outputs."""

    def __init__(self, backbone, stages: list[str], **kwargs):
        super().__init__(backbone, **kwargs)
        self._stages = stages

    def describe(self) -> list[str]:
        """One line per stage (what `dlsem models show` prints under the layer table)."""
        return list(self._stages)

    @torch.no_grad()
    def stages(self, image: torch.Tensor) -> dict:
        """For one normalised image (C, H, W), in eval mode: RPN proposals (P, 4) best first, the
        scored regions before the final NMS, and the detections after it; boxes in image pixels."""
        was = self.training
        self.eval()
        try:
            size = [tuple(image.shape[-2:])]
            images, _ = self.transform([image])
            feats = self.backbone(images.tensors)
            if isinstance(feats, torch.Tensor):
                feats = OrderedDict([("0", feats)])
            proposals, _ = self.rpn(images, feats)
            nms = self.roi_heads.nms_thresh
            self.roi_heads.nms_thresh = 1.0  # IoU > 1 never happens: every scored region survives
            try:
                before, _ = self.roi_heads(feats, proposals, images.image_sizes)
            finally:
                self.roi_heads.nms_thresh = nms
            after, _ = self.roi_heads(feats, proposals, images.image_sizes)
            before = self.transform.postprocess(before, images.image_sizes, size)[0]
            after = self.transform.postprocess(after, images.image_sizes, size)[0]
            (rh, rw), (h, w) = images.image_sizes[0], size[0]
            scale = torch.tensor([w / rw, h / rh, w / rw, h / rh], device=image.device)
            return {"proposals": proposals[0] * scale, "before_nms": before, "detections": after}
        finally:
            self.train(was)


def _probe(module: nn.Module, shape) -> dict[str, tuple[int, ...]]:
    """Output shapes (C, H, W) of `module` for a (1, *shape) input, on the meta device (no compute)."""
    from torch.func import functional_call

    meta = {k: torch.empty_like(v, device="meta") for k, v in [*module.named_parameters(), *module.named_buffers()]}
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = functional_call(module, meta, (torch.empty(1, *shape, device="meta"),))
    finally:
        module.train(was)
    if isinstance(out, torch.Tensor):
        out = {"0": out}
    return {k: tuple(v.shape[1:]) for k, v in out.items()}


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
    if fpn:
        # every stage from stride 4 on (ResNets: layer1..4): finer levels cost much and add little
        ends = [e for e in ends if 256 // _probe_layer(body, e, (c, 256, 256))[1] >= FPN_MIN_STRIDE] or ends[-1:]
        return_layers = {e: str(i) for i, e in enumerate(ends)}
        in_channels = [_probe_layer(body, e, (c, lo, lo))[0] for e in ends]
        features = BackboneWithFPN(body, return_layers, in_channels, fpn_width)
        maps = _probe(features, (c, 256, 256))  # levels '0'.. and 'pool'
    else:
        features = body
        maps = _probe(body, (c, 256, 256))
        features.out_channels = maps["0"][0]
    strides = [max(1, round(256 / s[1])) for s in maps.values()]
    if anchor_sizes is None:
        sizes = [(4 * s,) for s in strides] if fpn else [tuple(max(1, round(lo / d)) for d in (8, 4, 2))]
    elif fpn:
        if len(anchor_sizes) != len(strides):
            raise ConfigError(f"with model.fpn, model.anchor_sizes needs one size per pyramid level: {len(strides)} "
                              f"(strides {', '.join(map(str, strides))}), got {len(anchor_sizes)}")
        sizes = [(a,) for a in anchor_sizes]
    else:
        sizes = [tuple(anchor_sizes)]
    ratios = [tuple(aspect_ratios)] * len(sizes)
    anchors = AnchorGenerator(tuple(sizes), tuple(ratios))
    names = [k for k in maps if k != "pool"]
    roi = MultiScaleRoIAlign(names, output_size=ROI_SIZE, sampling_ratio=2)
    ch = features.out_channels
    head = TwoMLPHead(ch * ROI_SIZE ** 2, head_width)
    predictor = FastRCNNPredictor(head_width, num_outputs)
    train_n, test_n = proposals
    stages = [
        f"1 backbone   {backbone}{' + FPN' if fpn else ''}: image {c}x{lo}x{lo} -> "
        + ", ".join(f"{s[0]}x{s[1]}x{s[2]} (stride {st})" for s, st in zip(_probe(features, (c, lo, lo)).values(), strides)),
        f"2 RPN        {anchors.num_anchors_per_location()[0]} anchors per position (sizes "
        f"{', '.join('/'.join(map(str, s)) for s in sizes)} px x ratios {', '.join(f'{r:g}' for r in aspect_ratios)}) "
        f"scored object/background and refined; NMS 0.7 keeps {train_n} (training) / {test_n} (evaluation) proposals",
        f"3 RoI align  each proposal's features pooled to {ch}x{ROI_SIZE}x{ROI_SIZE}: R-CNN's warped region, "
        f"cut from the shared feature map{'s' if fpn else ''}",
        f"4 box head   {ch * ROI_SIZE ** 2} -> {head_width} -> {head_width} -> {num_outputs} class scores "
        f"(background + {num_outputs - 1}) and {4 * num_outputs} box refinements per region",
        f"5 output     softmax, scores < {score_thresh:g} dropped, NMS per class at IoU {nms_iou:g}, "
        f"at most {detections_per_img} boxes",
        f"training     {rpn_batch} anchors and {roi_batch} proposals sampled per image; "
        f"loss = rpn_objectness + rpn_box + cls + box",
    ]
    return RCNN(features, stages, num_classes=None, min_size=lo, max_size=hi, image_mean=[0.0] * c,
                image_std=[1.0] * c, rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=2 * train_n,
                rpn_post_nms_top_n_train=train_n, rpn_pre_nms_top_n_test=2 * test_n, rpn_post_nms_top_n_test=test_n,
                rpn_batch_size_per_image=rpn_batch, box_roi_pool=roi, box_head=head, box_predictor=predictor,
                box_score_thresh=score_thresh, box_nms_thresh=nms_iou, box_detections_per_img=detections_per_img,
                box_batch_size_per_image=roi_batch)


def _probe_layer(body: nn.Sequential, end: str, shape) -> int:
    """Output shape (C, H, W) of `body` up to and including its child `end`."""
    children = list(body.named_children())
    k = [n for n, _ in children].index(end)
    return _probe(nn.Sequential(OrderedDict(children[: k + 1])), shape)["0"]


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
