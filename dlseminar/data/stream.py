"""Batches of streamed Files (data/files.py): decoded, resized and augmented in DataLoader worker processes.

The batches are BatchPlan's, the ones TensorLoader and DetLoader give for the same data: the
same samples in the same order (shuffled by (seed, epoch), sharded for DDP, a tiny last batch
folded into the one before), the same augmentation draws (seeded by epoch and batch number),
the same per-batch normalisation on the device. So a streamed run and an in-memory run of the
same files give the same metrics, and a run resumed mid-epoch (set_epoch(epoch, start)) reads
only the batches after its checkpoint.

A sampler hands the DataLoader one ticket a batch, (epoch, batch number, sample indices), and a
worker makes the whole batch from it (BatchSource): nothing is collated sample by sample. The
workers persist across epochs and ignore SIGINT/SIGTERM: the training process owns the signals
(it finishes the step, writes last.pt) and shuts them down. A file that became unreadable since
the scan is reported by the worker, not raised there (a worker's exception arrives as a traceback):
the training process says it in one line, or skips it under data.skip_bad.
"""
from __future__ import annotations

import atexit
import signal
import weakref

import torch

from ..console import note
from ..errors import DataError
from .files import Files, cpus
from .loader import BatchPlan


class StreamLoader(BatchPlan):
    """Batches of Files and their labels on the device: (x (B, C, H, W), y) like TensorLoader's, or with
    lists=True (detection) (list of images, list of target dicts) like DetLoader's.

    labels: a (N,) tensor of classes, Files of masks read with the images, or a list of target dicts.
    transform: the per-batch normalisation on the device; augment: (x, y, epoch, batch) -> (x, y), run
    in the workers on the raw uint8 batch.
    """

    def __init__(self, files: Files, labels, batch_size, shuffle: bool, seed: int, device, transform=None,
                 augment=None, lists: bool = False):
        super().__init__(len(files), batch_size, shuffle, seed)
        self.source = BatchSource(files, labels, augment, lists)
        self.device, self.transform, self.lists = torch.device(device), transform, lists
        self.workers = min(files.workers, cpus())
        self.skip_bad = files.skip_bad
        self._data = None  # the DataLoader, made at the first pass; its workers then persist
        self._tickets = _Tickets()  # its sampler, given each pass's tickets (no reference back: no cycle)
        self._skipped: set[str] = set()

    def tickets(self):
        """This pass's batches from `start` on, as (epoch, number, indices) of this process's part."""
        order = self.order()
        order = torch.arange(self.n) if order is None else order
        epoch, start, rank, world, lists = self.epoch, self.start, self.rank, self.world, self.lists
        stops = self._stops()

        def gen():
            a = 0
            for i, b in enumerate(stops):
                if i >= start:
                    idx = order[a:b] if world == 1 else order[a:b].tensor_split(world)[rank]
                    # augmentation seeds: TensorLoader numbers each rank's part, DetLoader the global batch
                    yield epoch, (i if world == 1 or lists else i * world + rank), idx.tolist()
                a = b
        return gen()

    def _loader(self):
        from torch.utils.data import DataLoader

        w = self.workers
        if w:
            _OPEN.add(self)
        return DataLoader(self.source, batch_size=None, sampler=self._tickets, num_workers=w, collate_fn=_as_is,
                          pin_memory=self.device.type == "cuda", persistent_workers=w > 0,
                          worker_init_fn=_quiet if w else None, prefetch_factor=2 if w else None,
                          generator=torch.Generator())  # its own: the global RNG (dropout) is not drawn from

    def close(self) -> None:
        """Let the worker processes go (the DataLoader's own shutdown: each finishes and exits)."""
        self._data = None

    def __iter__(self):
        if self._data is None:
            self._data = self._loader()
        self._tickets.plan = self.tickets()
        dev, t = self.device, self.transform
        copy = dev.type == "cuda"  # pinned batches: the copy overlaps the next batch's work
        for xs, ys, bad in self._data:
            if bad:
                self._unreadable(bad, xs is None)
            if self.lists:
                xs = [x.to(dev, non_blocking=copy) for x in xs]
                yield ([x if t is None else t(x) for x in xs],
                       [{k: v.to(dev, non_blocking=copy) for k, v in d.items()} for d in ys])
            else:
                xs = xs.to(dev, non_blocking=copy)
                yield (xs if t is None else t(xs)), ys.to(dev, non_blocking=copy)

    def _unreadable(self, bad: list[str], empty: bool) -> None:
        if not self.skip_bad:
            raise DataError(f"{bad[0]}; it could be read when the run started: fix or restore it, or pass "
                            f"--set data.skip_bad=true to skip unreadable images")
        if empty:
            raise DataError(f"every image of a batch became unreadable while streaming (first: {bad[0]})")
        for why in bad:
            if why not in self._skipped:
                self._skipped.add(why)
                note(f"skipped an image that became unreadable while streaming: {why}")


class BatchSource:
    """What a worker does with a ticket: read the batch's files, stack them with their labels, augment.

    Returns (x, y, unreadable): x (B, C, H, W) uint8 or a list of (C, H_i, W_i); y the classes, masks
    or target dicts of the samples read; unreadable the messages of the files that failed (x is None
    when none could be read)."""

    def __init__(self, files: Files, labels, augment, lists: bool):
        self.files, self.labels, self.augment, self.lists = files, labels, augment, lists
        self.paired = isinstance(labels, Files)  # masks: the second tensor of each read

    def __getitem__(self, ticket):
        epoch, number, idx = ticket
        rows, good, bad = [], [], []
        for i in idx:
            try:
                rows.append(self.files.row(i))
                good.append(i)
            except DataError as e:
                bad.append(str(e))
        if not rows:
            return None, None, bad
        if self.lists:
            xs, ys = [r[0] for r in rows], [dict(self.labels[i]) for i in good]
        else:
            xs = torch.stack([r[0] for r in rows])
            ys = torch.stack([r[1] for r in rows]) if self.paired else self.labels[torch.tensor(good)]
        if self.augment is not None:
            xs, ys = self.augment(xs, ys, epoch, number)
        return xs, ys, bad


class _Tickets:
    """The DataLoader's sampler: the tickets of the pass that starts."""

    plan = iter(())

    def __iter__(self):
        return self.plan


# Loaders whose workers may still run. Workers ignore SIGTERM, so multiprocessing's exit handler, which
# terminates daemonic children and joins them, would wait for ever on a loader still referenced at exit
# (from a traceback, say): this handler, registered after it and so run before it, closes them first.
_OPEN: weakref.WeakSet[StreamLoader] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for loader in list(_OPEN):
        loader.close()


def _as_is(batch):
    return batch


def _quiet(_worker_id: int) -> None:
    """A worker leaves SIGINT/SIGTERM to the training process (which stops it): no KeyboardInterrupt
    traceback from a worker, and no 'worker killed by signal' error in the training process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
