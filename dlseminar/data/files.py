"""Samples kept as files and decoded on demand: what an image dataset too big for RAM is made of.

A reader of image files (datasets/folder.py, seg_folder.py, coco.py, voc.py) that streams
(data.in_memory) still reads every file once at the start, through `scan`: unreadable files are
found, and each image's exact pixel sums gathered, before the first step, as when it decodes
into memory; so both ways split the same samples and fit the same channel statistics. Where it
would return a tensor of decoded images it returns Files, a lazy stack:

    len(X), X.shape            the decoded stack's (N, C, H, W) (largest H, W for images of many sizes)
    X[i], X[a:b], X.split(n)   decoded on the spot (plots read a few images this way)
    select(X, ix)              the samples of a split, still files
    data/stream.py             batches decoded in DataLoader worker processes
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

SCAN_BLOCK = 1024  # files a scan has in flight: its memory does not grow with the dataset


def cpus() -> int:
    """CPUs this process may run on (the affinity mask under a scheduler or taskset): at most this many
    worker processes stream (data.num_workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


class Paths:
    """N rows of file paths (one or more files a sample) held in two NumPy arrays, not N Python objects:
    forked DataLoader workers read them without touching reference counts, so the pages stay shared
    with the training process instead of being copied into every worker as they are read."""

    def __init__(self, rows):
        rows = [tuple(r) if isinstance(r, (tuple, list)) else (r,) for r in rows]
        self.width = len(rows[0]) if rows else 1
        raw = [os.fsencode(p) for r in rows for p in r]
        self.blob = np.frombuffer(b"".join(raw), dtype=np.uint8).copy()
        self.ends = np.cumsum([len(b) for b in raw], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ends) // self.width

    def __getitem__(self, i: int) -> tuple[Path, ...]:
        out = []
        for j in range(i * self.width, (i + 1) * self.width):
            a = int(self.ends[j - 1]) if j else 0
            out.append(Path(os.fsdecode(self.blob[a:int(self.ends[j])].tobytes())))
        return tuple(out)

    def take(self, ix) -> Paths:
        return Paths([self[int(i)] for i in ix])


class Files:
    """A lazy stack of one decoded tensor a sample, read from its files when asked.

    read(*paths) decodes one sample's files into a tuple of tensors (an image; an image and its
    mask) exactly as the in-memory path decodes them; `column` is the one this stack is, `shape`
    its (C, H, W) or (H, W). `sums` (N, 2, C) and `areas` (N,) are each image's exact pixel sums and
    pixel count, gathered by the scan: the training split's channel statistics without reading
    it again. `workers` and `skip_bad` are data.num_workers and data.skip_bad, for the loader.
    """

    def __init__(self, paths: Paths, read: Callable, shape, *, column: int = 0, sums: torch.Tensor | None = None,
                 areas: torch.Tensor | None = None, workers: int = 2, skip_bad: bool = False):
        self.paths, self.read, self.column, self.sample_shape = paths, read, column, tuple(shape)
        self.sums, self.areas = sums, areas
        self.workers, self.skip_bad = workers, skip_bad

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),) + self.sample_shape

    def row(self, i: int) -> tuple[torch.Tensor, ...]:
        """Every tensor of sample i (image, and mask when there is one), decoded."""
        return self.read(*self.paths[i])

    def __getitem__(self, key):
        if isinstance(key, slice):
            items = [self.row(i)[self.column] for i in range(*key.indices(len(self)))]
            return torch.stack(items) if items and all(x.shape == items[0].shape for x in items) else items
        return self.row(int(key))[self.column]

    def split(self, n: int):
        """Decoded stacks of n samples in order (a tensor's split(n), one stack at a time)."""
        for a in range(0, len(self), n):
            yield self[a:a + n]

    def column_of(self, column: int, shape) -> Files:
        """Another tensor of the same samples (the masks of these images): one read serves both."""
        return Files(self.paths, self.read, shape, column=column, workers=self.workers, skip_bad=self.skip_bad)

    def take(self, ix) -> Files:
        ix = np.asarray(ix, dtype=np.int64)
        pick = torch.from_numpy(ix)
        return Files(self.paths.take(ix), self.read, self.sample_shape, column=self.column,
                     sums=None if self.sums is None else self.sums[pick],
                     areas=None if self.areas is None else self.areas[pick], workers=self.workers,
                     skip_bad=self.skip_bad)

    def pixel_sums(self) -> tuple[torch.Tensor, int]:
        """((2, C) int64 sums of values and squares, pixels a channel) over these images: data/imagestats.py."""
        return self.sums.sum(0), int(self.areas.sum())


def select(X, ix):
    """The samples `ix` of X: a tensor's rows, a list's items, or Files (still files)."""
    if isinstance(X, Files):
        return X.take(ix)
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(ix)]
    return [X[int(i)] for i in ix]


def scan(n: int, probe: Callable[[int], object], threads: int | None = None) -> list:
    """[probe(0), ..., probe(n - 1)] in threads (Pillow and torch decode without the GIL), in order; a
    DataError that a probe raises takes its place in the list, for the caller to report or skip."""
    out: list = [None] * n

    def one(i: int) -> None:
        try:
            out[i] = probe(i)
        except DataError as e:
            out[i] = e

    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        for a in range(0, n, SCAN_BLOCK):
            list(pool.map(one, range(a, min(n, a + SCAN_BLOCK))))
    return out
