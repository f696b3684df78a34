"""Object-detection data kept in memory: images (uint8) and one target dict per image.

A target is what torchvision's detectors take: {"boxes": (K, 4) float32 [x1, y1, x2, y2] in
pixels of the stored image, "labels": (K,) int64 in 1..num_classes} (0 is the detector's
background, never a label). K may be 0: an image without objects is a valid negative sample,
in training and in evaluation.

Images of one size are stored as a (N, C, H, W) tensor, otherwise as a list of (C, H, W)
tensors (DataInfo.in_shape then holds the largest height and width). Splits are drawn by
seed (not stratified: an image holds several labels), per-channel mean/std are fitted on the
training split, and each batch is normalised on the device as for every image dataset; the
detector's own transform then only resizes (its mean/std are 0/1, see models/detector.py).

`shapes_det` (generated, offline) lives here; `coco` and `voc_det` read files (coco.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..console import note
from ..errors import ConfigError, DataError
from ..registry import DATASETS
from ..seeding import mix_seed
from .base import BatchPlan, Data, DataInfo, check_split, split_indices
from .images import SHAPES, channel_stats, draw_shape, shape_options

EVAL_BATCH = 16  # images per forward pass in evaluation (a detector's activations are large)


@dataclass
class DetImages:
    """A whole detection dataset before splitting."""

    images: torch.Tensor | list[torch.Tensor]  # (N, C, H, W) uint8, or N x (C, H_i, W_i) uint8
    targets: list[dict[str, torch.Tensor]]  # per image: boxes (K, 4) float32 xyxy, labels (K,) int64 1-based
    class_names: list[str]  # object classes: label k is class_names[k - 1]
    scale: float = 255.0
    test: tuple | None = None  # an official test set (images, targets), if any


def target(boxes, labels) -> dict[str, torch.Tensor]:
    """A target dict from box coordinates (K, 4) xyxy and 1-based labels (K,), K may be 0."""
    return {"boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))}


def _take(images, idx):
    return images[torch.as_tensor(idx)] if isinstance(images, torch.Tensor) else [images[i] for i in idx]


def image_shape(images) -> tuple[int, int, int]:
    """(C, H, W) of stacked images, or (C, largest H, largest W) of a list."""
    if isinstance(images, torch.Tensor):
        return tuple(images.shape[1:])  # type: ignore[return-value]
    return (images[0].shape[0], max(int(x.shape[1]) for x in images), max(int(x.shape[2]) for x in images))


def list_stats(images: list[torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """Per-channel mean/std of images of any sizes (float64, (C, 1, 1)), as images.channel_stats."""
    c = images[0].shape[0]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for x in images:
        v = x.double() / scale
        s1 += v.sum((1, 2))
        s2 += v.pow(2).sum((1, 2))
        n += x.shape[1] * x.shape[2]
    mean = s1 / n
    std = (s2 / n - mean ** 2).clamp(min=0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return {"mean": mean.view(c, 1, 1), "std": std.view(c, 1, 1), "scale": torch.tensor(float(scale))}


def split_det(det: DetImages, name: str, val_split: float, test_split: float, standardize: bool, seed: int,
              stats: dict | None = None) -> "DetData":
    """Random split by seed (an official test set replaces the test cut); train-only channel stats."""
    n = len(det.targets)
    check_split(name, n, val_split, test_split)
    parts = split_indices(np.arange(n), "detection", val_split, 0.0 if det.test is not None else test_split, seed)
    splits = {s: (_take(det.images, ix), [det.targets[i] for i in ix]) for s, ix in parts.items() if len(ix)}
    if det.test is not None:
        splits["test"] = det.test
    for s in ("val", "test"):
        if s in splits and not any(len(t["labels"]) for t in splits[s][1]):
            note(f"the {s} split of {name!r} holds no object: its mAP is undefined (nan); give it more images")
    in_shape = image_shape(det.images)
    if stats:
        if tuple(stats["mean"].shape) != (in_shape[0], 1, 1):
            raise DataError(f"dataset {name!r} has {in_shape[0]} channels but the checkpoint was trained on "
                            f"{stats['mean'].shape[0]}")
    elif standardize:
        train = splits["train"][0]
        stats = channel_stats(train, det.scale) if isinstance(train, torch.Tensor) else list_stats(train, det.scale)
    else:
        stats = {"scale": torch.tensor(float(det.scale))}
    info = DataInfo(name=name, kind="detection", in_shape=in_shape, num_classes=len(det.class_names),
                    class_names=list(det.class_names))
    return DetData(info=info, splits=splits, stats=dict(stats), per_batch=True)


@dataclass
class DetData(Data):
    """Data whose splits are (images, list of target dicts); batches are lists (see DetLoader)."""

    def loader(self, split: str, batch_size, shuffle: bool, seed: int, device, augment: list[str] = ()):
        images, targets = self.splits[split]
        if not shuffle and batch_size != "full":  # evaluation: results do not depend on it, memory does
            batch_size = min(int(batch_size), EVAL_BATCH)
        aug = DetAugment(list(augment), seed) if augment else None
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
    batch), as datasets/augment.py does, so a resumed run sees the same batches.
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


# --------------------------------------------------------------------------- shapes_det


def render_det_scene(rng: np.random.RandomState, kinds, size: int, channels: int, noise: float):
    """One image (size, size, channels) uint8 with the shapes `kinds` (0-based) at random places.

    Each box is the tight pixel box of the shape as drawn ([x1, y1, x2, y2], x2/y2 exclusive),
    read back from a mask of that shape alone. A shape whose box would touch another's is
    placed again (up to 30 tries, then left out), so no shape hides part of another.
    """
    from PIL import Image, ImageDraw

    bg = tuple(int(v) for v in rng.randint(0, 256, 3))
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    boxes, labels = [], []
    for k in kinds:
        fg = tuple(int(v) for v in rng.randint(0, 256, 3))
        while sum(abs(a - b) for a, b in zip(fg, bg)) < 150:  # keep every shape visible on its background
            fg = tuple(int(v) for v in rng.randint(0, 256, 3))
        for _ in range(30):
            r = size * rng.uniform(0.07, 0.2)
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            rot = rng.uniform(0, 2 * math.pi)
            mask = Image.new("L", (size, size), 0)
            draw_shape(ImageDraw.Draw(mask), SHAPES[k], cx, cy, r, rot, 255)
            box = mask.getbbox()  # (x1, y1, x2, y2), x2/y2 exclusive; None if nothing was drawn
            if box is None or any(_touch(box, b) for b in boxes):
                continue
            draw_shape(draw, SHAPES[k], cx, cy, r, rot, fg)
            boxes.append(box)
            labels.append(int(k) + 1)
            break
    a = np.asarray(im, dtype=np.float32)
    a = np.clip(a + rng.normal(0, noise * 255, a.shape), 0, 255).astype(np.uint8)
    if channels == 1:
        a = a.mean(2, keepdims=True).astype(np.uint8)
    return a, target(boxes, labels)


def _touch(a, b, margin: int = 2) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


@DATASETS.register("shapes_det", kind="detection")
def shapes_det(seed, n_samples=500, noise=None, image_size=None, num_classes=None, channels=3, max_shapes=4):
    """Generated scenes of 0-data.max_shapes shapes each, with their boxes and classes (offline detection)."""
    num_classes, size = shape_options("shapes_det", num_classes, image_size, channels, 1, (128, 32))
    if max_shapes < 1:
        raise ConfigError(f"data.max_shapes must be >= 1 (got {max_shapes})")
    rng = np.random.RandomState(seed)
    nz = 0.05 if noise is None else noise
    X, targets = [], []
    for _ in range(n_samples):
        kinds = rng.randint(0, num_classes, rng.randint(0, max_shapes + 1))  # 0 shapes: a negative image
        a, t = render_det_scene(rng, kinds, size, channels, nz)
        X.append(a)
        targets.append(t)
    X_t = torch.from_numpy(np.stack(X)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return DetImages(X_t, targets, list(SHAPES[:num_classes]))
