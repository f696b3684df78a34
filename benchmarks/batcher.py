"""In-memory batches: dlseminar's TensorLoader against torch.utils.data.DataLoader(TensorDataset).

Both serve the same tensors, shuffled, in batches of 128, one epoch after another; the
DataLoader fetches each sample with __getitem__ and stacks them with default_collate (its
default, num_workers=0), the TensorLoader gathers each epoch's permutation once and slices it.
Rounds alternate the two (a warm-up round discarded) and the script prints the median
batches/s of each and their ratio (target >= 5x). Images are timed twice: as stored (uint8
batches: the batching alone, which the target is about) and with the per-batch normalisation
(uint8 -> float, per-channel mean/std) that training applies after either loader: that work
is the same for both and dominates, so the end-to-end ratio is smaller.

    .venv/bin/python benchmarks/batcher.py [--batch-size 128] [--rounds 5] [--seconds 0.5]

It reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dlseminar.config import resolve  # noqa: E402
from dlseminar.data import TensorLoader
from dlseminar.datasets import build_data  # noqa: E402
from dlseminar import catalog  # noqa: E402
from _common import run  # noqa: E402  (benchmarks/ is on sys.path)

TARGET = 5.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per loader, after one warm-up round")
    p.add_argument("--seconds", type=float, default=0.5, help="least time per round (whole epochs are run)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    return p.parse_args(argv)


def epochs_rate(make_iter, seconds: float) -> tuple[float, int]:
    """Batches per second over whole epochs, running at least `seconds`."""
    batches, epoch, t0 = 0, 0, time.perf_counter()
    while True:
        epoch += 1
        for xb, yb in make_iter(epoch):
            batches += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return batches / elapsed, batches


def compare(name: str, X: torch.Tensor, y: torch.Tensor, transform, args) -> float:
    bs = args.batch_size
    tl = TensorLoader(X, y, bs, shuffle=True, seed=0, transform=transform)

    def tensor_loader(epoch):
        tl.set_epoch(epoch)
        return iter(tl)

    dl = DataLoader(TensorDataset(X, y), batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))

    def data_loader(epoch):
        for xb, yb in dl:
            yield (xb if transform is None else transform(xb)), yb

    # the same samples each epoch, just batched differently
    seen_tl = torch.cat([yb for _, yb in tensor_loader(1)]).sort().values
    seen_dl = torch.cat([yb for _, yb in data_loader(1)]).sort().values
    same = torch.equal(seen_tl, seen_dl)

    rates = {"TensorLoader": [], "DataLoader": []}
    for r in range(args.rounds + 1):
        order = ("TensorLoader", "DataLoader") if r % 2 == 0 else ("DataLoader", "TensorLoader")
        for which in order:
            rate, _ = epochs_rate(tensor_loader if which == "TensorLoader" else data_loader, args.seconds)
            if r:
                rates[which].append(rate)
    t, d = statistics.median(rates["TensorLoader"]), statistics.median(rates["DataLoader"])
    print(f"{name}: {tuple(X.shape)} {X.dtype}, batch {bs}, {len(tl)} batches/epoch"
          f"{'' if same else '   WARNING: the loaders served different samples'}")
    print(f"  TensorLoader {t:10.0f} batches/s   ({1e6 / t:7.1f} us/batch)")
    print(f"  DataLoader   {d:10.0f} batches/s   ({1e6 / d:7.1f} us/batch)   DataLoader(TensorDataset(X, y), shuffle=True)")
    print(f"  ratio TensorLoader/DataLoader: {t / d:.1f}x" + ("" if transform is not None else
          f"  target >= {TARGET:.0f}x  {'OK' if t / d >= TARGET else 'UNDER TARGET'}"))
    return t / d


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    catalog.load_all()
    load0 = os.getloadavg()[0]
    print(f"batcher: torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds of >= {args.seconds}s each")
    ratios = []
    digits = build_data(resolve(sets=["data.name=digits"]))  # standardised float32 table
    X, y = digits.splits["train"]
    ratios.append(compare("digits (tabular)", X, y, None, args))
    shapes = build_data(resolve(sets=["data.name=shapes", "data.n_samples=2000"]))  # uint8 images, normalised per batch
    X, y = shapes.splits["train"]
    ratios.append(compare("shapes (images, uint8 batches)", X, y, None, args))
    end_to_end = compare("shapes (images, + per-batch normalisation in both)", X, y, shapes.transform(torch.device("cpu")), args)
    load = max(load0, os.getloadavg()[0])
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs" + ("  (other work competes: figures are noisy)"
                                                                  if load > (os.cpu_count() or 1) - 0.5 else ""))
    print(f"smallest batching ratio: {min(ratios):.1f}x  target >= {TARGET:.0f}x  {'OK' if min(ratios) >= TARGET else 'UNDER TARGET'}"
          f"   (images with their normalisation: {end_to_end:.1f}x)")
    return 0


if __name__ == "__main__":
    run(main, "batcher")
