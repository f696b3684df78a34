"""Segmentation samples: images (N, C, H, W) uint8 and class masks (N, H, W) int64, and their split.

Masks may hold 255 (IGNORE) where pixels are unlabelled; it is never a class. Images are split
by seed (not stratified: there is no one label per image), per-channel mean/std are fitted on
the training split, and each batch is normalised on the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ...data.core import Data, DataInfo, Samples, SplitSpec, check_split, split_indices
from ...data.files import Files, select
from ...data.imagestats import fit_stats


@dataclass
class SegData(Data):
    """Split images with a mask each: augmentation moves the mask with the image. A palette read from
    palette masks, if any, is kept in `stats["palette"]` ((K, 3) uint8), so a checkpoint carries it
    to plots and `dlsem predict` without the data files."""

    per_batch: bool = True
    augment_labels: ClassVar[str | None] = "mask"


@dataclass
class SegImages(Samples):
    """A whole segmentation dataset: X (N, C, H, W) uint8, masks (N, H, W) int64 class indices (255: ignore);
    streamed (data.in_memory), X is Files of (image, mask) pairs and masks their second column."""

    kinds: ClassVar[tuple[str, ...]] = ("segmentation",)

    X: torch.Tensor | Files
    masks: torch.Tensor | Files
    class_names: list[str]  # 'background' first
    scale: float = 255.0
    palette: torch.Tensor | None = None  # (K, 3) uint8 class colours read from palette masks, if any
    test: tuple[torch.Tensor, torch.Tensor] | None = None  # an official held-out set (VOC's val list), if any

    def split(self, spec: SplitSpec) -> SegData:
        """Random split by seed (an official held-out set replaces the test cut); train-only channel stats."""
        n = len(self.X)
        check_split(spec.name, n, spec.val, spec.test)
        parts = split_indices(n, spec.val, 0.0 if self.test is not None else spec.test,
                              spec.seed)
        splits = {s: self._take(ix) for s, ix in parts.items() if len(ix)}
        if self.test is not None:
            splits["test"] = self.test
        in_shape = tuple(self.X.shape[1:])
        info = DataInfo(name=spec.name, kind="segmentation", in_shape=in_shape, num_classes=len(self.class_names),
                        class_names=list(self.class_names))
        spec.check(info)
        stats = fit_stats(spec.name, in_shape, splits["train"][0], self.scale, spec.standardize, spec.stats)
        if self.palette is not None and "palette" not in stats:
            stats["palette"] = self.palette
        return SegData(info=info, splits=splits, stats=stats)

    def _take(self, ix) -> tuple:
        X = select(self.X, ix)
        if isinstance(X, Files):  # the masks are read with their images: one read serves both
            return X, X.column_of(1, self.masks.sample_shape)
        return X, self.masks[torch.as_tensor(ix)]
