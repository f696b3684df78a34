"""Streamed image folders (data.in_memory: false): flat memory as the folder grows, and a pipeline that keeps up.

Part 1, memory: a folder of N images (64x64, PNG and JPEG alternately, 4 classes of generated
shapes) and one 4x larger are each trained for one epoch by `dlsem train` in a subprocess, with
data.in_memory=false and data.num_workers=2. While it runs, /proc is sampled every 0.2 s for the
whole process tree (the training process and its DataLoader workers): the peak of the tree's summed
PSS (each shared page split between the processes that map it: what the tree really holds) and of
its summed RSS (shared pages counted in every process: an upper bound). Streamed, the peak must
stay flat from N to 4N (within 20 %); the same two runs decoded in memory (data.in_memory=true)
are shown beside them for contrast (--no-contrast skips them). Validation and test batches are
of the training batch size too: at the default train.eval_batch_size (1024) a split of 400
images and one of 1,600 would be evaluated in batches of 400 and 1,024, whose activations
differ by more than the data does.

Part 2, rates: images/s of the streaming pipeline alone (Setup.loader('train', train=True) over
the N-image folder: worker processes decode, resize and augment (hflip, crop), the training process
normalises; no model), against the model's own training step rate (forward + backward + Adam on
batches already normalised in memory), for resnet18 and for the small `cnn`; and, for context, the
in-memory loader of the same folder (the same augmentation, in the training process). Each rate is
the median of --rounds passes after a warm-up pass. The pipeline must not be the bottleneck: its
rate above the model's.

    .venv/bin/python benchmarks/streaming.py [--n 2000] [--rounds 3] [--no-contrast]

This script reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dlseminar.assemble import build  # noqa: E402
from dlseminar.config import resolve  # noqa: E402
from dlseminar.datasets.images import SHAPES, render_shape  # noqa: E402
from dlseminar.engine.optim import build_optimizer  # noqa: E402
from _common import run  # noqa: E402  (benchmarks/ is on sys.path)

FLAT = 1.20  # peak memory at 4N / at N, streamed: at most this
SIZE = 64


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="images in the small folder (default 2000; the large one has 4x)")
    p.add_argument("--rounds", type=int, default=3, help="timed passes of each rate, after a warm-up (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-contrast", dest="contrast", action="store_false",
                   help="skip the in-memory runs shown for contrast in part 1")
    return p.parse_args(argv)


def write_folder(root: Path, n: int, seed: int) -> int:
    """n generated 64x64 shapes in 4 class folders, PNG and JPEG alternately; returns the bytes written."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    total = 0
    for i in range(n):
        k = i % 4
        (root / SHAPES[k]).mkdir(parents=True, exist_ok=True)
        path = root / SHAPES[k] / f"{i:06d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(render_shape(rng, SHAPES[k], SIZE, 3, 0.05)).save(path, quality=90)
        total += path.stat().st_size
    return total


# ----------------------------------------------------------------------------- part 1: memory of the process tree

def _tree(root: int) -> list[int]:
    """root and every process descending from it (from the parent pids in /proc/*/stat)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples a process tree's summed PSS and RSS every `every` seconds in a thread; keeps the peaks (MB)."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.pss = self.rss = self.parent = 0.0
        self.procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            pids = _tree(self.pid)
            pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024
            rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self.parent = max(self.parent, _kb(f"/proc/{self.pid}/status", "VmRSS:") / 1024)
            self.procs = max(self.procs, len(pids))
            time.sleep(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join()


def train_run(folder: Path, out: Path, in_memory: bool, batch_size: int) -> dict:
    """One epoch of `dlsem train` on `folder` in a subprocess; its tree's peak memory and its seconds."""
    sets = [f"data.path={folder}", "data.name=folder", f"data.image_size={SIZE}", "model.name=cnn",
            f"train.batch_size={batch_size}", f"train.eval_batch_size={batch_size}", "train.epochs=1",
            "data.augment=hflip,crop", "early_stop.patience=0",
            f"data.in_memory={str(in_memory).lower()}", "data.num_workers=2", "logging.plots=false"]
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "dlseminar", "train", *[a for s in sets for a in ("--set", s)],
                          "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(p.pid)
    _, err = p.communicate()
    mem.stop()
    if p.returncode != 0:
        raise RuntimeError(f"dlsem train failed ({p.returncode}): {err[-1000:]}")
    return {"pss": mem.pss, "rss": mem.rss, "parent": mem.parent, "procs": mem.procs,
            "seconds": time.perf_counter() - t0}


def part_memory(args, small: Path, large: Path, tmp: Path) -> dict:
    print(f"\npart 1, peak memory of the `dlsem train` process tree (training process + DataLoader workers), one "
          f"epoch of cnn at {SIZE}x{SIZE}, batch {args.batch_size}, hflip+crop, num_workers 2, sampled every 0.2 s "
          f"(reading smaps_rollup costs CPU: the seconds are slower than unobserved runs)")
    print(f"  {'':24s} {'images':>7s} {'peak PSS':>10s} {'peak RSS':>10s} {'parent RSS':>11s} {'processes':>9s} "
          f"{'seconds':>8s}")
    res = {}
    for in_memory in ((False, True) if args.contrast else (False,)):
        how = "in memory" if in_memory else "streamed"
        for name, folder, n in (("N", small, args.n), ("4N", large, 4 * args.n)):
            r = train_run(folder, tmp / f"run-{how}-{name}".replace(" ", "-"), in_memory, args.batch_size)
            res[(how, name)] = r
            print(f"  {how + ', ' + name:24s} {n:7,d} {r['pss']:7.0f} MB {r['rss']:7.0f} MB {r['parent']:8.0f} MB "
                  f"{r['procs']:9d} {r['seconds']:8.1f}")
        a, b = res[(how, "N")], res[(how, "4N")]
        print(f"  {how + ', 4N / N':24s} {'':7s} {b['pss'] / a['pss']:10.2f}x {b['rss'] / a['rss']:9.2f}x "
              f"{b['parent'] / a['parent']:10.2f}x")
    s = res[("streamed", "4N")]["pss"] / res[("streamed", "N")]["pss"]
    print(f"  verdict: streamed peak PSS 4N/N {s:.2f}: {'flat' if s <= FLAT else 'NOT FLAT'} "
          f"(within {FLAT - 1:.0%} allowed)")
    return {"flat": s, "res": res}


# ----------------------------------------------------------------------------- part 2: pipeline vs model

def timed(fn, count: int, rounds: int) -> float:
    """images/s: `count` divided by the median seconds of `rounds` calls of fn, after one warm-up call."""
    times = []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        fn()
        if r:
            times.append(time.perf_counter() - t0)
    return count / statistics.median(times)


def pipeline_rate(setup, rounds: int) -> tuple[float, int]:
    loader = setup.loader("train", train=True)
    state = {"epoch": 0}

    def one_epoch():
        state["epoch"] += 1
        loader.set_epoch(state["epoch"])
        for _ in loader:
            pass

    n = len(setup.data.splits["train"][1])
    return timed(one_epoch, n, rounds), getattr(loader, "workers", 0)


def model_rate(setup, cfg, rounds: int, seconds: float = 2.0) -> float:
    """images/s of training steps (forward + backward + Adam) on batches already normalised in memory (the
    streamed batches themselves); as many batches as take about `seconds` a pass (resnet18 is slow on a CPU)."""
    model = copy.deepcopy(setup.model)
    opt = build_optimizer(cfg, model)
    model.train()

    def steps(batches):
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    batches = iter(setup.loader("train", train=True))
    first = [next(batches)]
    t0 = time.perf_counter()
    steps(first)
    data = first + [b for _, b in zip(range(max(0, int(seconds / (time.perf_counter() - t0)) - 1)), batches)]
    return timed(lambda: steps(data), sum(len(b[1]) for b in data), rounds)


def part_rates(args, small: Path) -> dict:
    base = ["data.name=folder", f"data.path={small}", f"data.image_size={SIZE}", "data.augment=hflip,crop",
            "data.in_memory=false", "data.num_workers=2", f"train.batch_size={args.batch_size}", "optim.name=adam"]
    print(f"\npart 2, images/s: the streaming pipeline alone (num_workers 2: decode + resize + hflip/crop in the "
          f"workers, normalise here) against the model's own step rate (fwd + bwd + adam), batch {args.batch_size}, "
          f"median of {args.rounds}")
    res = {}
    mem = build(resolve(sets=[*base, "model.name=cnn", "data.in_memory=true"]))
    res["in memory"], _ = pipeline_rate(mem, args.rounds)
    print(f"  in-memory loader, for context   {res['in memory']:10,.0f} images/s   (the same augmentation, in the "
          f"training process)")
    for model in ("resnet18", "cnn"):
        cfg = resolve(sets=[*base, f"model.name={model}"])
        setup = build(cfg)
        if "pipeline" not in res:
            res["pipeline"], workers = pipeline_rate(setup, args.rounds)
            print(f"  streaming pipeline ({workers} workers) {res['pipeline']:10,.0f} images/s")
        res[model] = model_rate(setup, cfg, args.rounds)
        ratio = res["pipeline"] / res[model]
        print(f"  {model:9s} training steps      {res[model]:10,.0f} images/s   pipeline / model {ratio:6.1f}x  "
              f"({'the pipeline keeps up' if ratio > 1 else 'THE PIPELINE IS THE BOTTLENECK'})")
    return res


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"streaming: torch {torch.__version__}, {torch.get_num_threads()} thread(s) on {os.cpu_count()} CPUs, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="dlsem-bench-stream-"))
    try:
        t0 = time.perf_counter()
        small_mb = write_folder(tmp / "small", args.n, 0) / 1e6
        large_mb = write_folder(tmp / "large", 4 * args.n, 1) / 1e6
        print(f"folders: {args.n:,} images ({small_mb:.0f} MB) and {4 * args.n:,} ({large_mb:.0f} MB), {SIZE}x{SIZE} "
              f"shapes, PNG/JPEG alternately, written in {time.perf_counter() - t0:.0f} s (page cache warm)")
        mem = part_memory(args, tmp / "small", tmp / "large", tmp)
        rates = part_rates(args, tmp / "small")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"\nsummary ({time.perf_counter() - t_start:.0f} s, load average now {load:.2f} on {os.cpu_count()} CPUs):")
    st = mem["res"]
    print(f"  streamed peak PSS {st[('streamed', 'N')]['pss']:.0f} MB at {args.n:,} images, "
          f"{st[('streamed', '4N')]['pss']:.0f} MB at {4 * args.n:,}: {mem['flat']:.2f}x "
          f"({'flat within 20 %' if mem['flat'] <= FLAT else 'NOT flat'})")
    if ("in memory", "N") in st:
        print(f"  in memory for contrast: {st[('in memory', 'N')]['pss']:.0f} MB -> "
              f"{st[('in memory', '4N')]['pss']:.0f} MB")
    print(f"  pipeline {rates['pipeline']:,.0f} images/s; resnet18 {rates['resnet18']:,.0f} images/s "
          f"({rates['pipeline'] / rates['resnet18']:.1f}x), cnn {rates['cnn']:,.0f} images/s "
          f"({rates['pipeline'] / rates['cnn']:.1f}x)")
    return 0


if __name__ == "__main__":
    run(main, "streaming")
