"""Image classification samples: (N, C, H, W) images, one class per image, and their split.

Images stay raw (uint8) in memory, or in their files when streamed (data/files.py); the per-channel
mean/std fitted on the training split normalise each batch on the device (data.core.BatchNorm). Tables of classes are data.table.Table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ...data.core import Data, DataInfo, Samples, SplitSpec, check_split, split_indices
from ...data.files import Files, select
from ...data.imagestats import fit_stats


@dataclass
class ImageData(Data):
    """Split images with one class each: augmentation moves the image only."""

    per_batch: bool = True
    augment_labels: ClassVar[str | None] = "none"


@dataclass
class Images(Samples):
    """A whole image dataset: X (N, C, H, W) uint8 (scale 255) or float, or the files of such images
    (data.in_memory: Files, decoded per batch), y (N,) class indices."""

    kinds: ClassVar[tuple[str, ...]] = ("classification",)

    X: torch.Tensor | Files
    y: torch.Tensor
    class_names: list[str]
    scale: float = 255.0  # what X is divided by to reach [0, 1]
    test: tuple[torch.Tensor, torch.Tensor] | None = None  # an official test set (MNIST, CIFAR), if any

    def split(self, spec: SplitSpec) -> ImageData:
        """Stratified split by seed (val/test carved from X; an official test set replaces the test cut)."""
        y = self.y.numpy()
        check_split(spec.name, len(y), spec.val, spec.test)
        parts = split_indices(len(y), spec.val, 0.0 if self.test is not None else spec.test, spec.seed, strata=y)
        splits = {s: (select(self.X, ix), self.y[torch.as_tensor(ix)]) for s, ix in parts.items() if len(ix)}
        if self.test is not None:
            splits["test"] = self.test
        in_shape = tuple(self.X.shape[1:])
        info = DataInfo(name=spec.name, kind="classification", in_shape=in_shape, num_classes=len(self.class_names),
                        class_names=list(self.class_names))
        spec.check(info)
        stats = fit_stats(spec.name, in_shape, splits["train"][0], self.scale, spec.standardize, spec.stats)
        return ImageData(info=info, splits=splits, stats=stats)
