"""What every dataset returns, the split/standardise step for tables, and the in-memory loader."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..console import note
from ..errors import ConfigError, DataError
from ..seeding import mix_seed

SPLITS = ("train", "val", "test")


@dataclass
class Table:
    """A whole tabular dataset before splitting: X (N, F) and y (N,) class indices or values."""

    X: np.ndarray
    y: np.ndarray
    kind: str  # "classification" | "regression"
    feature_names: list[str]
    class_names: list[str] | None = None
    target_name: str = "y"
    strata: np.ndarray | None = None  # groups to keep in proportion across splits (default: the classes)
    # -- read from a file (csv): what split_table needs to encode text and to name lines in messages
    text: dict[str, np.ndarray] = field(default_factory=dict)  # feature name -> (N,) strings; X holds nan there
    values: np.ndarray | None = None  # the target as numbers when its cells are numbers (None: text labels)
    lines: np.ndarray | None = None  # (N,) the file line of each row
    source: str | None = None  # the file, for messages; also: columns and classes are matched by name
    skip_bad: bool = False  # rows with a category the training split lacks are left out instead of refused
    note: str | None = None  # why task: auto chose this kind (printed unless a checkpoint decides)


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


@dataclass
class Data:
    info: DataInfo
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> (X, y); missing if empty
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # standardisation: mean, std (, scale)
    per_batch: bool = False  # images: X stays raw (uint8) and each batch is normalised on the device

    def loader(self, split: str, batch_size, shuffle: bool, seed: int, device, augment: list[str] = ()):
        """Batches of one split. Datasets whose samples are not two stacked tensors override this."""
        X, y = self.splits[split]
        aug = None
        if augment:
            from .augment import Augment

            with_mask = self.info.kind == "segmentation"
            aug = Augment(list(augment), tuple(X.shape[-2:]), with_mask, seed)
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


def check_split(name: str, n: int, val_split: float, test_split: float) -> None:
    """Enough samples for a train/val/test split, and fractions that leave some for training."""
    if n < 5:
        raise DataError(f"dataset {name!r} has only {n} images; at least 5 are needed to split")
    if (1 - val_split - test_split) <= 0:
        raise ConfigError("data.val_split + data.test_split must leave samples for training (sum < 1)")


def split_indices(y: np.ndarray, kind: str, val: float, test: float, seed: int,
                   strata: np.ndarray | None = None) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    groups = strata if strata is not None else (y if kind == "classification" else None)
    strat = groups is not None

    def cut(ids, frac, salt):
        labels = groups[ids] if strat else None
        state = (seed + salt) % 2**32  # scikit-learn takes 32-bit seeds; seed itself may be 2**32 - 1
        try:
            return train_test_split(ids, test_size=frac, random_state=state, stratify=labels)
        except ValueError:  # a class too small to stratify: fall back to a plain random split
            if not strat:
                raise
            note("a class has too few samples for a stratified split; splitting at random")
            return train_test_split(ids, test_size=frac, random_state=state)

    out = {}
    rest = idx
    n_test, n_val = round(test * len(y)), max(1, round(val * len(y)))  # whole samples: sizes exactly as asked
    if n_test > 0:
        rest, out["test"] = cut(idx, n_test, 0)
    if n_val >= len(rest):
        raise DataError(f"{len(y)} samples are too few for val_split {val} and test_split {test}")
    out["train"], out["val"] = cut(rest, n_val, 1)
    return out


def split_table(table: Table, name: str, task: str, val_split: float, test_split: float, standardize: bool,
                seed: int, stats: dict | None = None) -> Data:
    """Split a Table by seed (stratified for classes) and fit on the training split only: the features'
    mean/std and, for regression, the target's (data.standardize), the categories of text columns, the
    classes. `stats` from a checkpoint replaces every fit, so eval and resume see what training saw; a
    checkpoint without target stats (older ones) leaves the targets as they are (mean 0, std 1)."""
    from .columns import features, select_columns, target

    given = stats is not None
    stats = dict(stats or {})
    schema = stats.get("table") if given and table.source is not None else None  # names: files only
    if schema:
        table = select_columns(table, schema["columns"], name)
    y, kind, class_names = target(table, name, task, schema)
    if table.note and not schema:
        note(table.note)
    if len(y) < 5:
        raise DataError(f"dataset {name!r} has only {len(y)} samples; at least 5 are needed to split train/val/test")
    if (1 - val_split - test_split) <= 0:
        raise ConfigError("data.val_split + data.test_split must leave samples for training (sum < 1)")
    parts = split_indices(y, kind, val_split, test_split, seed, table.strata)
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise DataError(f"dataset {name!r} is too small for the requested splits")
    X, feature_names, categories, keep = features(table, parts["train"], schema)
    if keep is not None:
        parts = {s: ix[keep[ix]] for s, ix in parts.items()}

    if given:
        if "mean" in stats and stats["mean"].shape[-1] != X.shape[1]:
            raise DataError(f"dataset {name!r} has {X.shape[1]} features but the checkpoint was trained on {stats['mean'].shape[-1]}")
    else:
        if standardize:
            stats.update(_mean_std(X[parts["train"]]))
            if kind == "regression":
                t = _mean_std(y.reshape(len(y), -1)[parts["train"]])
                stats.update(target_mean=t["mean"], target_std=t["std"])
        if table.source is not None:  # a file: eval may read another one, matched by these names
            stats["table"] = {"kind": kind, "target": table.target_name, "classes": list(class_names),
                              "columns": list(table.feature_names), "categories": categories}
    # float64 stats, applied the same way in training and in eval, so eval reproduces exactly
    Xs = (X - stats["mean"].double().numpy()) / stats["std"].double().numpy() if "mean" in stats else X

    if kind == "classification":
        y_t = torch.as_tensor(y.astype(np.int64))
        num_classes = len(class_names)
    else:
        y_t = torch.as_tensor(y.astype(np.float32)).reshape(len(y), -1)  # (N, T), in the data's units
        num_classes = 0
    X_t = torch.as_tensor(Xs, dtype=torch.float32)
    splits = {s: (X_t[torch.as_tensor(ix)], y_t[torch.as_tensor(ix)]) for s, ix in parts.items() if len(ix)}
    scaled = kind == "regression" and "target_mean" in stats
    info = DataInfo(name=name, kind=kind, in_shape=(X.shape[1],), num_classes=num_classes, class_names=list(class_names),
                    feature_names=feature_names, target_name=table.target_name,
                    target_mean=stats["target_mean"].double().flatten().tolist() if scaled else [],
                    target_std=stats["target_std"].double().flatten().tolist() if scaled else [])
    return Data(info=info, splits=splits, stats=stats)


def _mean_std(a: np.ndarray) -> dict[str, torch.Tensor]:
    """Per-column mean and std (float64) of the training rows; a constant column keeps std 1."""
    std = a.std(0)
    return {"mean": torch.from_numpy(a.mean(0)), "std": torch.from_numpy(np.where(std > 1e-12, std, 1.0))}


class BatchPlan:
    """Which samples each batch of an epoch holds; the loaders below add what a batch is made of.

    Shuffling uses a generator seeded by (seed, epoch), so an epoch's order is the same after a
    resume and differs from every other epoch's. `batch_size="full"` is the whole split at once
    (batch gradient descent). shard(rank, world) serves one process of several (DDP) its part of
    every global batch: the same global batches in the same order as one process.
    """

    def __init__(self, n: int, batch_size, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.bs = n if batch_size == "full" else min(int(batch_size), n)
        self.epoch = 0
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world: int):
        """Yield only rank `rank`'s contiguous part of each global batch (sizes differ by at most one)."""
        if world > 1 and self.bs < world:
            raise ConfigError(f"train.batch_size {self.bs} is smaller than the {world} processes: "
                              f"every process needs at least one sample of each batch")
        self.rank, self.world = rank, world
        return self

    def order(self) -> torch.Tensor | None:
        """This epoch's permutation of the samples (None: in order)."""
        if self.shuffle and self.bs < self.n:
            return torch.randperm(self.n, generator=torch.Generator().manual_seed(mix_seed(self.seed, self.epoch)))
        return None

    def _stops(self) -> list[int]:
        """Ends of the global batches. In training, a last batch too small to split (one sample, or fewer
        than the processes) is folded into the one before it: batch norm cannot normalise one value
        per channel, and every process needs a sample. With 1 or 2 processes the batches are the same."""
        bs, n = self.bs, self.n
        stops = list(range(bs, n, bs)) + [n]
        if self.shuffle and bs > 1 and len(stops) > 1 and n - stops[-2] < max(2, self.world):
            stops.pop(-2)
        return stops

    def __len__(self) -> int:
        return len(self._stops())


class TensorLoader(BatchPlan):
    """Batches of an in-memory (X, y) pair already on the device: no worker, no collate.

    A batch is one slice of X (after one gather per epoch when shuffling): no per-sample
    __getitem__ and no collate, which is what makes small tables and images fast (see
    benchmarks/batcher.py).
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size, shuffle: bool, seed: int = 0, transform=None,
                 augment=None):
        super().__init__(len(X), batch_size, shuffle, seed)
        self.X, self.y, self.transform = X, y, transform
        self.augment = augment  # (x, y, epoch, batch) -> (x, y), on raw batches before `transform`

    def __iter__(self):
        X, y = self.X, self.y
        order = self.order()
        stops = self._stops()
        if self.world > 1:  # this rank's part of each global batch, gathered once for the epoch
            if order is None:
                order = torch.arange(self.n)
            parts = [order[a:b].tensor_split(self.world)[self.rank] for a, b in zip([0] + stops[:-1], stops)]
            order = torch.cat(parts)
            stops = torch.tensor([len(p) for p in parts]).cumsum(0).tolist()
        if order is not None:
            order = order.to(X.device)
            X, y = _take(X, order), _take(y, order)
        t = self.transform
        start = 0
        for i, stop in enumerate(stops):
            xb, yb = X[start:stop], y[start:stop]
            if self.augment is not None:  # each rank draws its own augmentations
                xb, yb = self.augment(xb, yb, self.epoch, i if self.world == 1 else i * self.world + self.rank)
            yield (xb if t is None else t(xb)), yb
            start = stop


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] along the first dimension, as index_select on an (N, -1) view: one row copy per
    sample (for uint8 images about 25x faster than advanced indexing on the 4-D tensor)."""
    return t.reshape(len(t), -1).index_select(0, idx).view((len(idx),) + tuple(t.shape[1:]))
