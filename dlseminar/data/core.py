"""What a dataset is once it is split: its description (DataInfo), its splits (Data), and the
contract every dataset reader's result keeps (Samples.split).

A reader (datasets/) returns Samples: all samples of one task's kind, before splitting. Its
split(spec) cuts train/val/test by seed, fits what is fitted (standardisation, categories,
classes) on the training split only, and returns the Data the Task and the Engine use. The
containers live with their task (tasks/<name>/data.py); the table, which classification and
regression share, in data/table.py.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..console import note
from ..errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


@dataclass
class DataInfo:
    """What the task and model need to know about the data (stored in checkpoints)."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    target_name: str = "y"
    # regression: the model learns (y - target_mean) / target_std; empty: the targets as they are
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    # a generated dataset's true line or plane {"w0": ..., "w": [...]} in original units (the perceptron
    # lessons draw it and compare the learned weights with it); empty: unknown
    true_weights: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SplitSpec:
    """What Samples.split takes from the config, and what a checkpoint fixes."""

    name: str  # the dataset's registered name, for messages
    task: str  # the configured task; "auto": the samples' own kind
    val: float
    test: float
    standardize: bool
    seed: int
    stats: dict | None = None  # a checkpoint's fitted stats: they replace every fit
    # the checkpoint's check of the data (kind, input shape, classes), called once the split knows
    # them and before any saved stats are applied, so a mismatch is said in the user's terms
    expect: Callable[[DataInfo], None] | None = None

    def check(self, info: DataInfo) -> None:
        if self.expect is not None:
            self.expect(info)


class Samples:
    """What every dataset reader returns: all samples of a dataset before splitting."""

    kinds: ClassVar[tuple[str, ...]] = ()  # the tasks these samples can be trained for

    def split(self, spec: SplitSpec) -> Data:
        raise NotImplementedError


@dataclass
class Data:
    """A split dataset: tensors per split, the stats fitted on train, and how batches are made."""

    info: DataInfo
    splits: dict  # split -> (X, y); missing if empty
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # standardisation: mean, std (, scale)
    per_batch: bool = False  # X stays raw (uint8 images) and each batch is normalised on the device
    # how random augmentation moves the labels: None (no augmentation, e.g. a table), "none" (labels
    # stay as they are: classes), "mask" (a mask follows the image's geometry); see data/augment.py
    augment_labels: ClassVar[str | None] = None

    def loader(self, split: str, batch_size, shuffle: bool, seed: int, device, augment: list[str] = ()):
        """Batches of one split. Data whose samples are not two stacked tensors override this."""
        from .files import Files
        from .loader import TensorLoader

        X, y = self.splits[split]
        aug = None
        if augment:
            from .augment import Augment

            aug = Augment(list(augment), tuple(X.shape[-2:]), self.augment_labels == "mask", seed)
        if isinstance(X, Files):  # streamed (data.in_memory): decoded batch by batch in worker processes
            from .stream import StreamLoader

            return StreamLoader(X, y, batch_size, shuffle, seed, device, self.transform(device), aug)
        return TensorLoader(X.to(device), y.to(device), batch_size, shuffle=shuffle, seed=seed,
                            transform=self.transform(device), augment=aug)

    def transform(self, device):
        """The per-batch input transform (None when X is already standardised)."""
        if not self.per_batch:
            return None
        return BatchNorm(self.stats, device) if self.stats else BatchNorm({"scale": torch.tensor(1.0)}, device)


class BatchNorm:
    """x -> (x / scale - mean) / std per channel, on the device: images stay uint8 in memory."""

    def __init__(self, stats: dict, device):
        self.scale = float(stats.get("scale", torch.tensor(1.0)))
        mean, std = stats.get("mean"), stats.get("std")
        self.mean = None if mean is None else mean.to(device, torch.float32)
        self.std = None if std is None else std.to(device, torch.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.scale != 1.0:
            x = x / self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


def check_split(name: str, n: int, val_split: float, test_split: float, what: str = "images") -> None:
    """Enough samples for a train/val/test split, and fractions that leave some for training."""
    if n < 5:
        raise DataError(f"dataset {name!r} has only {n} {what}; at least 5 are needed to split train/val/test")
    if (1 - val_split - test_split) <= 0:
        raise ConfigError("data.val_split + data.test_split must leave samples for training (sum < 1)")


def split_indices(n: int, val: float, test: float, seed: int, strata: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Indices of n samples per split, by seed. With `strata` (one group per sample: the classes, or
    any groups to keep in proportion) every split holds each group in proportion."""
    from .splitting import cut as draw  # scikit-learn's draws, without importing it (splitting.py)

    idx = np.arange(n)
    groups = strata
    strat = groups is not None

    def cut(ids, frac, salt):
        labels = groups[ids] if strat else None
        state = (seed + salt) % 2**32  # numpy's RandomState takes 32-bit seeds; seed itself may be 2**32 - 1
        try:
            return draw(ids, frac, state, labels)
        except ValueError:  # a class too small to stratify: fall back to a plain random split
            if not strat:
                raise
            note("a class has too few samples for a stratified split; splitting at random")
            return draw(ids, frac, state)

    out = {}
    rest = idx
    n_test, n_val = round(test * n), max(1, round(val * n))  # whole samples: sizes exactly as asked
    if n_test > 0:
        rest, out["test"] = cut(idx, n_test, 0)
    if n_val >= len(rest):
        raise DataError(f"{n} samples are too few for val_split {val} and test_split {test}")
    out["train"], out["val"] = cut(rest, n_val, 1)
    return out
