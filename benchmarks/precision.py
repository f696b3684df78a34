"""Mixed precision and memory layout on this machine: ResNet-18 training steps/s at 3x32x32.

The Trainer's own step (Trainer.train_epoch over a fixed number of batches) on generated
shapes images, batch 64, SGD with momentum, for each of
    precision 32 | bf16   x   channels_last off | on
from the same initial weights. Settings alternate round by round (a warm-up pass per setting
discarded) and the script prints the median steps/s of each and its speedup over 32/off.
train.precision and train.channels_last stay opt-in unless they help here.

    .venv/bin/python benchmarks/precision.py [--steps 4] [--rounds 2] [--batch-size 64] [--threads N]

It reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dlseminar.config import resolve  # noqa: E402
from dlseminar.engine import amp  # noqa: E402
from dlseminar.engine.optim import LRSchedule, build_optimizer  # noqa: E402
from dlseminar.engine.trainer import Trainer  # noqa: E402
from dlseminar.assemble import build  # noqa: E402
from _common import run  # noqa: E402  (benchmarks/ is on sys.path)

SETTINGS = [("32", False), ("32", True), ("bf16", False), ("bf16", True)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed training steps per round and setting")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds, after one warm-up pass per setting")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: PyTorch's own choice)")
    return p.parse_args(argv)


class FirstBatches:
    """The first `n` batches of a loader, as a loader (what train_epoch iterates)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self):
        return self.n

    def __iter__(self):
        for i, b in enumerate(self.loader):
            if i == self.n:
                return
            yield b


def make_trainer(setup, init, precision: str, channels_last: bool, tmp: Path, batches: int):
    sets = [f"model.name={setup.cfg['model.name']}", "data.name=shapes", f"train.precision={precision}",
            f"train.channels_last={str(channels_last).lower()}", "optim.name=momentum", "optim.lr=0.01",
            "device=cpu", "logging.plots=false"]
    cfg = resolve(sets=sets)
    model = copy.deepcopy(init)
    opt = build_optimizer(cfg, model)
    sched = LRSchedule(opt, cfg, batches, 1)
    meta = {"config": cfg.to_dict(), "data_info": asdict(setup.data.info), "data_stats": setup.data.stats,
            "num_outputs": setup.task.num_outputs}
    return Trainer(model, setup.task, opt, sched, setup.device, cfg, tmp, meta)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.batch_size * (args.steps + 1)
    cfg = resolve(sets=[f"model.name={args.model}", "data.name=shapes", f"data.n_samples={int(n / 0.6) + 8}",
                        f"train.batch_size={args.batch_size}", "device=cpu"])
    setup = build(cfg)
    init = copy.deepcopy(setup.model)
    loader = setup.loader("train", train=True)
    print(f"precision: {args.model} on shapes {tuple(setup.data.info.in_shape)}, batch {args.batch_size}, "
          f"{args.steps} steps x {args.rounds} rounds per setting, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {'yes' if amp.cpu_has_native_bf16() else 'no'}")
    tmp = Path(tempfile.mkdtemp(prefix="dlsem-bench-"))
    load0 = os.getloadavg()[0]
    trainers = {s: make_trainer(setup, init, *s, tmp, args.steps) for s in SETTINGS}
    times: dict = {s: [] for s in SETTINGS}
    losses: dict = {}
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for s, tr in trainers.items():  # warm-up: first-call allocations, oneDNN primitive creation
            tr.train_epoch(FirstBatches(loader, 1))
        for r in range(args.rounds):
            order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
            for s in order:
                tr = trainers[s]
                tr.state.partial_loss = [0.0, 0]
                t0 = time.perf_counter()
                tr.train_epoch(FirstBatches(loader, args.steps))
                times[s].append((time.perf_counter() - t0) / args.steps)
                losses[s] = tr.state.partial_loss[0] / max(tr.state.partial_loss[1], 1)
    base = statistics.median(times[SETTINGS[0]])
    for s in SETTINGS:
        m = statistics.median(times[s])
        print(f"  precision {s[0]:>4}  channels_last {'on ' if s[1] else 'off'}   {1 / m:6.2f} steps/s   "
              f"({m * 1e3:7.0f} ms/step)   speedup {base / m:4.2f}x   last loss {losses[s]:.3f}")
    load = max(load0, os.getloadavg()[0])
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs" + ("  (other work competes: figures are noisy)"
                                                                  if load > (os.cpu_count() or 1) - 0.5 else ""))
    best = max(SETTINGS, key=lambda s: -statistics.median(times[s]))
    print(f"fastest: precision {best[0]}, channels_last {'on' if best[1] else 'off'} "
          f"({base / statistics.median(times[best]):.2f}x over 32/off)")
    return 0


if __name__ == "__main__":
    run(main, "precision")
