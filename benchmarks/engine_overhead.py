"""Engine overhead: the Trainer against a plain hand-written PyTorch loop.

Same MLP (same initial weights), same digits tensors, same optimizer and
hyper-parameters, same number of epochs and optimizer steps; both validate every
epoch. The two run alternately in one process (ABBA order, a warm-up round
discarded) and the script prints the ratio of the median times Trainer/plain.

    .venv/bin/python benchmarks/engine_overhead.py [--epochs 20] [--rounds 7] [--hidden 128]

The Trainer runs with its defaults except early stopping off (so it does every
epoch): metrics.csv, best-weight snapshots and checkpoints (checkpoint.min_interval_s
as configured) are part of its cost and are timed. The plain loop shuffles with the
same per-epoch seeds as TensorLoader, so both runs should end with the same weights.
This script reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dlseminar.config import resolve  # noqa: E402
from dlseminar.engine import checkpoint as ckpt  # noqa: E402
from dlseminar.engine.optim import LRSchedule, build_optimizer  # noqa: E402
from dlseminar.engine.trainer import Trainer  # noqa: E402
from dlseminar.assemble import build  # noqa: E402
from _common import CheckpointCounter, max_weight_diff, run  # noqa: E402  (benchmarks/ is on sys.path)

TARGET = 1.10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="epochs per timed run (default 20)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds of (plain, trainer), after one warm-up round")
    p.add_argument("--hidden", type=int, nargs="+", default=[128], help="MLP hidden sizes (default 128)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--data", default="digits")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra config override key=value (repeatable), e.g. optim.lr=0.003 or checkpoint.min_interval_s=0")
    p.add_argument("--profile", action="store_true", help="also cProfile one Trainer.fit and print the top entries")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the plain loop
def plain_fit(model, opt, Xtr, ytr, Xva, yva, epochs, batch_size, seed):
    """What a careful person writes by hand for in-memory tensors; returns (steps, val loss, val acc)."""
    n = len(Xtr)
    stops = list(range(batch_size, n, batch_size)) + [n]
    if batch_size > 1 and len(stops) > 1 and n - stops[-2] == 1:
        stops.pop(-2)  # like TensorLoader: a trailing one-sample batch joins the one before it
    bounds = list(zip([0] + stops[:-1], stops))
    steps = 0
    val_loss = val_acc = float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        # same per-epoch order as TensorLoader, so the two runs can be compared weight for weight
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g)
        X, y = Xtr[perm], ytr[perm]
        loss_sum = 0.0
        for a, b in bounds:
            xb, yb = X[a:b], y[a:b]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            steps += 1
        train_loss = loss_sum / n  # noqa: F841  (a hand-written loop reports it too)
        model.eval()
        with torch.inference_mode():
            out = model(Xva)
            val_loss = F.cross_entropy(out, yva).item()
            val_acc = (out.argmax(1) == yva).double().mean().item()
    return steps, val_loss, val_acc


# ----------------------------------------------------------------------------- the Trainer
def trainer_fit(setup, cfg, model, epochs, profiler=None):
    """Build the Trainer as dlseminar.run.train() does and time fit(); returns ((wall s, cpu s), state, trainer, dir)."""
    train_loader = setup.loader("train", train=True)
    val_loader = setup.loader("val")
    opt = build_optimizer(cfg, model)
    sched = LRSchedule(opt, cfg, len(train_loader), epochs)
    run_dir = Path(tempfile.mkdtemp(prefix="dlsem-bench-"))
    meta = {"config": cfg.to_dict(), "data_info": asdict(setup.data.info), "data_stats": setup.data.stats,
            "num_outputs": setup.task.num_outputs}
    trainer = Trainer(model, setup.task, opt, sched, setup.device, cfg, run_dir, meta)
    gc.collect()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        if profiler is not None:
            profiler.enable()
        c0, t0 = time.process_time(), time.perf_counter()
        state = trainer.fit(train_loader, val_loader, epochs)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if profiler is not None:
            profiler.disable()
    return (seconds, cpu), state, trainer, run_dir


def run_plain(setup, cfg, init_model, epochs, batch_size):
    model = copy.deepcopy(init_model)
    opt = build_optimizer(cfg, model)  # same optimizer type and hyper-parameters as the Trainer's
    Xtr, ytr = setup.data.splits["train"]
    Xva, yva = setup.data.splits["val"]
    Xtr, ytr, Xva, yva = (t.to(setup.device) for t in (Xtr, ytr, Xva, yva))
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    steps, vl, va = plain_fit(model, opt, Xtr, ytr, Xva, yva, epochs, batch_size, cfg["seed"])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return (seconds, cpu), steps, vl, va, model


def run_trainer(setup, cfg, init_model, epochs, counter):
    model = copy.deepcopy(init_model)
    counter.reset()
    seconds, state, trainer, run_dir = trainer_fit(setup, cfg, model, epochs)
    row = state.history[-1]
    files = sorted(p.name for p in run_dir.iterdir())
    shutil.rmtree(run_dir, ignore_errors=True)
    return seconds, state.step, row["val/loss"], row["val/acc"], model, list(counter.files), counter.seconds, files


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = [f"data.name={args.data}", "model.name=mlp", f"model.hidden=[{', '.join(map(str, args.hidden))}]",
            "optim.name=adam", f"train.batch_size={args.batch_size}", f"train.epochs={args.epochs}",
            "early_stop.patience=0", "device=cpu", "logging.plots=false", *args.sets]
    cfg = resolve(sets=sets)
    setup = build(cfg)
    init_model = copy.deepcopy(setup.model)  # both loops start from these weights
    counter = CheckpointCounter()
    ckpt.save = counter  # the Trainer calls ckpt.save(...) through the module

    ntr, nva = len(setup.data.splits["train"][0]), len(setup.data.splits["val"][0])
    print(f"engine overhead: {args.data} train {ntr} / val {nva}, mlp hidden {args.hidden}, adam lr {cfg['optim.lr']}, "
          f"batch {args.batch_size}, {args.epochs} epochs, torch {torch.__version__}, {args.threads} thread(s), "
          f"checkpoint.min_interval_s {cfg['checkpoint.min_interval_s']}")

    plain_t, trainer_t, ckpt_t, plain_c, trainer_c = [], [], [], [], []
    load0 = os.getloadavg()[0]
    last = {}
    for r in range(args.rounds + 1):  # round 0 is the warm-up
        order = ("plain", "trainer") if r % 2 == 0 else ("trainer", "plain")
        for which in order:
            if which == "plain":
                t, steps, vl, va, model = run_plain(setup, cfg, init_model, args.epochs, args.batch_size)
                last["plain"] = (steps, vl, va, model)
                if r:
                    plain_t.append(t[0])
                    plain_c.append(t[1])
            else:
                t, steps, vl, va, model, written, cs, files = run_trainer(setup, cfg, init_model, args.epochs, counter)
                last["trainer"] = (steps, vl, va, model, written, files)
                if r:
                    trainer_t.append(t[0])
                    trainer_c.append(t[1])
                    ckpt_t.append(cs)
        if r:
            print(f"  round {r}: {order[0]} first   plain {plain_t[-1] * 1e3:7.1f} ms   trainer {trainer_t[-1] * 1e3:7.1f} ms"
                  f"   ratio {trainer_t[-1] / plain_t[-1]:.3f}   (checkpoint writes {len(last['trainer'][4])}, "
                  f"{ckpt_t[-1] * 1e3:.1f} ms)")

    ps, pvl, pva, pmodel = last["plain"]
    ts, tvl, tva, tmodel, written, files = last["trainer"]
    mp, mt = statistics.median(plain_t), statistics.median(trainer_t)
    print(f"steps: plain {ps}, trainer {ts}" + ("" if ps == ts else "   MISMATCH: the loops did different work"))
    print(f"final val: plain acc {pva:.4f} loss {pvl:.4f}   trainer acc {tva:.4f} loss {tvl:.4f}   "
          f"max |weight diff| {max_weight_diff(pmodel, tmodel):.2e}"
          + ("" if min(pva, tva) > 0.9 else "   WARNING: val acc <= 0.9, check the setup"))
    print(f"trainer checkpoint writes per fit: {len(written)} ({', '.join(written) or 'none'}), "
          f"median {statistics.median(ckpt_t) * 1e3:.1f} ms of the fit; run dir held: {', '.join(files)}")
    print(f"median time: plain {mp * 1e3:.1f} ms ({mp / ps * 1e6:.0f} us/step)   "
          f"trainer {mt * 1e3:.1f} ms ({mt / ts * 1e6:.0f} us/step)   "
          f"trainer extra {(mt - mp) * 1e3:+.1f} ms per fit (amortised {(mt - mp) / ts * 1e6:+.0f} us/step), "
          f"of which checkpoint writes {statistics.median(ckpt_t) * 1e3:.1f} ms")
    cratio = statistics.median(trainer_c) / statistics.median(plain_c)
    print(f"cpu-time ratio trainer/plain: {cratio:.3f}  (process CPU time: less disturbed by other load, "
          f"but blind to fsync waits)")
    load = max(load0, os.getloadavg()[0])
    if load > 1.5 * max(args.threads, 1) or load > (os.cpu_count() or 1) - 0.5:
        print(f"note: load average was {load:.1f} on {os.cpu_count()} CPUs during the run: other work competes, "
              f"wall-clock figures are noisy")
    ratio = mt / mp
    mk = statistics.median(t - c for t, c in zip(trainer_t, ckpt_t))
    print(f"ratio without the time inside checkpoint file writes: {mk / mp:.3f}  (for reference only)")
    print(f"ratio trainer/plain (median of {args.rounds} rounds): {ratio:.3f}  target <= {TARGET:.2f}"
          f"  {'OK' if ratio <= TARGET else 'OVER TARGET'}")

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        model = copy.deepcopy(init_model)
        _, _, _, run_dir = trainer_fit(setup, cfg, model, args.epochs, profiler=prof)
        shutil.rmtree(run_dir, ignore_errors=True)
        print("\ncProfile of one Trainer.fit (internal time, top 25):")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    ckpt.save = counter.orig
    return 0


if __name__ == "__main__":
    run(main, "engine_overhead")
