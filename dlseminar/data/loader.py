"""Batches of a split: which samples each batch holds (BatchPlan), and the in-memory loader.
(Streamed files: data/stream.py.)"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..seeding import mix_seed


class BatchPlan:
    """Which samples each batch of an epoch holds; the loaders below add what a batch is made of.

    Shuffling uses a generator seeded by (seed, epoch), so an epoch's order is the same after a
    resume and differs from every other epoch's. `batch_size="full"` is the whole split at once
    (batch gradient descent). shard(rank, world) serves one process of several (DDP) its part of
    every global batch: the same global batches in the same order as one process.
    set_epoch(epoch, start) makes the passes of a resumed epoch begin at batch `start`: the batches
    before it, which its checkpoint holds, are never read (their numbers, which seed augmentation,
    stay those of the whole epoch).
    """

    def __init__(self, n: int, batch_size, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.bs = n if batch_size == "full" else min(int(batch_size), n)
        self.epoch, self.start = 0, 0
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

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

    def close(self) -> None:
        """Done with these batches: release what serving them holds (a streamed loader's worker processes)."""


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
            X, y = take(X, order), take(y, order)
        t, first = self.transform, self.start
        start = 0
        for i, stop in enumerate(stops):
            if i < first:  # done before the checkpoint this epoch resumes from
                start = stop
                continue
            xb, yb = X[start:stop], y[start:stop]
            if self.augment is not None:  # each rank draws its own augmentations
                xb, yb = self.augment(xb, yb, self.epoch, i if self.world == 1 else i * self.world + self.rank)
            yield (xb if t is None else t(xb)), yb
            start = stop


def take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] along the first dimension, as index_select on an (N, -1) view: one row copy per
    sample (for uint8 images about 25x faster than advanced indexing on the 4-D tensor)."""
    return t.reshape(len(t), -1).index_select(0, idx).view((len(idx),) + tuple(t.shape[1:]))
