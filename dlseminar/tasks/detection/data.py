"""Detection samples: images (uint8) with one target dict each, their split, and their batches.

A target is what torchvision's detectors take: {"boxes": (K, 4) float32 [x1, y1, x2, y2] in
pixels of the stored image, "labels": (K,) int64 in 1..num_classes} (0 is the detector's
background, never a label). K may be 0: an image without objects is a valid negative sample,
in training and in evaluation.

Images of one size are stored as a (N, C, H, W) tensor, otherwise as a list of (C, H, W)
tensors (DataInfo.in_shape then holds the largest height and width), or streamed from their
files (data/files.py: Files, batches by data/stream.py). Splits are drawn by
seed (not stratified: an image holds several labels), per-channel mean/std are fitted on the
training split, and each batch is normalised on the device as for every image dataset; the
detector's own transform then only resizes (its mean/std are 0/1, see models/detector.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ...console import note
from ...data.core import Data, DataInfo, Samples, SplitSpec, check_split, split_indices
from ...data.files import Files, select
from ...data.imagestats import fit_stats
from ...data.loader import BatchPlan
from ...seeding import mix_seed

EVAL_BATCH = 16  # images per forward pass in evaluation (a detector's activations are large)


def target(boxes, labels) -> dict[str, torch.Tensor]:
    """A target dict from box coordinates (K, 4) xyxy and 1-based labels (K,), K may be 0."""
    return {"boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))}


def image_shape(images) -> tuple[int, int, int]:
    """(C, H, W) of stacked images, or (C, largest H, largest W) of a list (streamed Files know theirs)."""
    if isinstance(images, (torch.Tensor, Files)):
        return tuple(images.shape[1:])  # type: ignore[return-value]
    return (images[0].shape[0], max(int(x.shape[1]) for x in images), max(int(x.shape[2]) for x in images))


@dataclass
class DetData(Data):
    """Data whose splits are (images, list of target dicts); batches are lists (see DetLoader).
    Augmentation moves the boxes with the image (DetAugment)."""

    per_batch: bool = True
    augment_labels: ClassVar[str | None] = "boxes"

    def loader(self, split: str, batch_size, shuffle: bool, seed: int, device, augment: list[str] = ()):
        images, targets = self.splits[split]
        if not shuffle and batch_size != "full":  # evaluation: results do not depend on it, memory does
            batch_size = min(int(batch_size), EVAL_BATCH)
        aug = DetAugment(list(augment), seed) if augment else None
        if isinstance(images, Files):  # streamed (data.in_memory): decoded batch by batch in worker processes
            from ...data.stream import StreamLoader

            return StreamLoader(images, targets, batch_size, shuffle, seed, device, self.transform(device), aug,
                                lists=True)
        return DetLoader(images, targets, batch_size, shuffle, seed, device, self.transform(device), aug)


class DetLoader(BatchPlan):
    """Batches of (list of normalised float images (C, H, W), list of target dicts), on the device.

    The same interface as TensorLoader: the shuffle is seeded by (seed, epoch), so an
    epoch's order is the same after a resume, and in training a last batch of a single
    image is folded into the one before it.
    """

    def __init__(self, images, targets, batch_size, shuffle: bool, seed: int, device, transform, augment=None):
        self.stacked, self.device = isinstance(images, torch.Tensor), device
        # one-size images move to the device once, as TensorLoader's; images of many sizes (VOC,
        # your COCO export) stay in host memory and travel one batch at a time
        self.images = images.to(device) if self.stacked else images
        self.targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        super().__init__(len(self.targets), batch_size, shuffle, seed)
        self.transform, self.augment = transform, augment

    def __iter__(self):
        order = self.order()
        order = torch.arange(self.n) if order is None else order
        t = self.transform
        start = 0
        for i, stop in enumerate(self._stops()):
            if i < self.start:  # done before the checkpoint this epoch resumes from
                start = stop
                continue
            idx = order[start:stop].tensor_split(self.world)[self.rank]  # world 1: the whole batch
            targets = [dict(self.targets[j]) for j in idx.tolist()]
            if self.stacked and self.augment is None:
                xb = self.images[idx.to(self.images.device)]  # (B, C, H, W) uint8
                xs = list((xb if t is None else t(xb)).unbind(0))
            else:
                xs = [self.images[j].to(self.device) for j in idx.tolist()]
                if self.augment is not None:
                    xs, targets = self.augment(xs, targets, self.epoch, i)
                xs = [x if t is None else t(x) for x in xs]  # (C, H, W) each; BatchNorm broadcasts (C, 1, 1)
            yield xs, targets
            start = stop


class DetAugment:
    """Random flips and crops of (image, boxes, labels), with torchvision.transforms.v2 moving the boxes.

    hflip / vflip mirror with probability 1/2; crop takes 50-100 % of the area and resizes it
    back to the image's size, clipping boxes at the crop and dropping those left smaller than
    a pixel (SanitizeBoundingBoxes). Each batch draws from its own seed (run seed, epoch,
    batch), as data/augment.py does, so a resumed run sees the same batches.
    """

    def __init__(self, names: list[str], seed: int):
        self.names, self.seed = names, seed

    def _transform(self, size):
        from torchvision.transforms import v2

        ops = []
        if "hflip" in self.names:
            ops.append(v2.RandomHorizontalFlip())
        if "vflip" in self.names:
            ops.append(v2.RandomVerticalFlip())
        if "crop" in self.names:
            ops += [v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True), v2.SanitizeBoundingBoxes(min_size=1)]
        return v2.Compose(ops)

    def __call__(self, xs: list[torch.Tensor], targets: list[dict], epoch: int, batch: int):
        from torchvision import tv_tensors

        out_x, out_t = [], []
        with torch.random.fork_rng(devices=[]):  # v2 draws from the global CPU RNG: fork it, seed it per batch
            torch.manual_seed(mix_seed(self.seed, epoch, batch))
            for x, t in zip(xs, targets):
                size = tuple(x.shape[-2:])
                sample = {"image": tv_tensors.Image(x),
                          "boxes": tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=size),
                          "labels": t["labels"]}
                s = self._transform(size)(sample)
                out_x.append(s["image"].as_subclass(torch.Tensor))
                out_t.append({**t, "boxes": s["boxes"].as_subclass(torch.Tensor).reshape(-1, 4),
                              "labels": s["labels"]})
        return out_x, out_t


@dataclass
class DetImages(Samples):
    """A whole detection dataset before splitting."""

    kinds: ClassVar[tuple[str, ...]] = ("detection",)

    images: torch.Tensor | list[torch.Tensor] | Files  # (N, C, H, W) uint8, N x (C, H_i, W_i) uint8, or streamed
    targets: list[dict[str, torch.Tensor]]  # per image: boxes (K, 4) float32 xyxy, labels (K,) int64 1-based
    class_names: list[str]  # object classes: label k is class_names[k - 1]
    scale: float = 255.0
    test: tuple | None = None  # an official test set (images, targets), if any

    def split(self, spec: SplitSpec) -> DetData:
        """Random split by seed (an official test set replaces the test cut); train-only channel stats."""
        n, name = len(self.targets), spec.name
        check_split(name, n, spec.val, spec.test)
        parts = split_indices(n, spec.val, 0.0 if self.test is not None else spec.test,
                              spec.seed)
        splits = {s: (select(self.images, ix), [self.targets[i] for i in ix]) for s, ix in parts.items() if len(ix)}
        if self.test is not None:
            splits["test"] = self.test
        for s in ("val", "test"):
            if s in splits and not any(len(t["labels"]) for t in splits[s][1]):
                note(f"the {s} split of {name!r} holds no object: its mAP is undefined (nan); give it more images")
        in_shape = image_shape(self.images)
        info = DataInfo(name=name, kind="detection", in_shape=in_shape, num_classes=len(self.class_names),
                        class_names=list(self.class_names))
        spec.check(info)
        stats = fit_stats(name, in_shape, splits["train"][0], self.scale, spec.standardize, spec.stats)
        return DetData(info=info, splits=splits, stats=stats)
