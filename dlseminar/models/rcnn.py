"""Faster R-CNN's torchvision parts put together on a zoo backbone's convolutional body (see detector.py).

detector.py registers the detectors and cuts the backbone; this module holds what needs
torchvision's detection code (FasterRCNN, the FPN, anchors, RoI align), so it is imported only
when a detector is built: registering the zoo does not import torchvision.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from ..errors import ConfigError

ROI_SIZE = 7  # RoI align output (7 x 7 per region, as in the paper's VGG-16 head)
FPN_MIN_STRIDE = 4  # the finest pyramid level (ResNet: layer1)


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


def _probe_layer(body: nn.Sequential, end: str, shape) -> int:
    """Output shape (C, H, W) of `body` up to and including its child `end`."""
    children = list(body.named_children())
    k = [n for n, _ in children].index(end)
    return _probe(nn.Sequential(OrderedDict(children[: k + 1])), shape)["0"]


def assemble(body: nn.Sequential, ends: list[str], *, backbone: str, c: int, lo: int, hi: int, num_outputs: int,
             fpn: bool, fpn_width: int, anchor_sizes, aspect_ratios, rpn_batch: int, proposals, roi_batch: int,
             head_width: int, score_thresh: float, nms_iou: float, detections_per_img: int) -> RCNN:
    """The detector on `body` (a backbone's convolutional part; `ends`: its stages' last layers)
    for c-channel images resized to short side lo, long side at most hi."""
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
