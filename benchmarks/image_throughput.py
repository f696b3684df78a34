"""Image throughput: the Trainer against a plain PyTorch loop for resnet18 on 3x32x32, and the data pipeline.

Part 1, Trainer vs plain: the same resnet18 (model.stem auto -> small stem at 32 px, same
initial weights), the same `shapes` tensors, Adam with the same hyper-parameters, the same
epochs and optimizer steps. The plain loop is what a careful person writes by hand and
mirrors the Trainer's batches exactly: TensorLoader's per-epoch shuffle seeds, the per-batch
uint8 -> float normalisation (Data.transform), the folding of a trailing batch of one; it
validates every epoch too. torch.manual_seed is set before each fit. The two run alternately
in one process (ABBA order, a warm-up round discarded); the script prints images/s of each,
the ratio of the median times Trainer/plain (target <= 1.03) and the max |weight diff| at
the end (both do the same float operations in the same order, so it should be 0).
The Trainer runs with its defaults except early stopping off: metrics.csv, best-weight
snapshots and checkpoint files (fsync'ed; checkpoint.min_interval_s as configured) are part
of its cost and are timed; the ratio without the time inside checkpoint writes is shown too.

Part 2, data pipeline vs model: (a) the one-time dataset build (generating `shapes`;
decoding a `folder` tree of PNG/JPEG files of mixed sizes that the script writes into a
temp dir and deletes), (b) the per-epoch loader, Setup.loader('train', train=True) with its
per-batch normalisation, for both, (c) the model's own training step rate (resnet18
forward + backward + Adam step on batches already normalised in memory). Each pipeline rate
is divided by the model's rate: the loader must be >> 1 for the pipeline not to be the
bottleneck on CPU.

    .venv/bin/python benchmarks/image_throughput.py [--rounds 4] [--epochs 3] [--n 1024] [--part all]

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

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dlseminar.config import resolve  # noqa: E402
from dlseminar.datasets import build_data  # noqa: E402
from dlseminar.datasets.images import SHAPES, render_shape  # noqa: E402
from dlseminar.engine import checkpoint as ckpt  # noqa: E402
from dlseminar.engine.optim import LRSchedule, build_optimizer  # noqa: E402
from dlseminar.engine.trainer import Trainer  # noqa: E402
from dlseminar.assemble import build  # noqa: E402
from _common import CheckpointCounter, max_weight_diff, run  # noqa: E402  (benchmarks/ is on sys.path)

TARGET = 1.03  # Trainer/plain, median times
PIPELINE_MIN = 10.0  # loader images/s / model images/s below this: the pipeline costs >= 10% of an epoch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="timed rounds (after one warm-up round) of each measurement (default 4)")
    # A fit must be long enough that the end-of-run checkpoint write (last.pt + best.pt, ~180 MB,
    # ~0.2 s; every real run pays it once) is not most of the difference: at 512 samples x 2 epochs
    # (10 optimizer steps, 7 s) it alone is ~2.5 % of the fit.
    p.add_argument("--epochs", type=int, default=3, help="epochs per timed fit in part 1 (default 3)")
    p.add_argument("--n", type=int, default=1024, help="shapes: data.n_samples (default 1024: 614 train / 205 val / 205 test)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--files", type=int, default=512, help="image files written for the folder dataset (default 512, 3 classes)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help=f"torch.set_num_threads (default torch's own: {torch.get_num_threads()})")
    p.add_argument("--device", default="cpu", help="device for both parts (default cpu)")
    p.add_argument("--part", choices=("all", "trainer", "pipeline"), default="all")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra config override key=value for part 1 (repeatable), e.g. checkpoint.min_interval_s=0")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Load:
    """Load average seen over a measurement: our own `threads` runnable threads plus everyone else's."""

    def __init__(self, threads: int):
        self.threads, self.peak = threads, os.getloadavg()[0]

    def see(self) -> float:
        self.peak = max(self.peak, os.getloadavg()[0])
        return os.getloadavg()[0]

    def note(self, what: str) -> None:
        # our own process accounts for about `threads` of the load; more than that competes with us
        cpus = os.cpu_count() or 1
        if self.peak > min(self.threads, cpus) + 0.75:
            print(f"note: load average reached {self.peak:.1f} on {cpus} CPUs during {what} ({self.threads} torch "
                  f"thread(s) of ours): other work competes, wall-clock figures are noisy; re-run when the machine is quiet")


# ----------------------------------------------------------------------------- part 1: the plain loop
def plain_fit(model, opt, transform, Xtr, ytr, Xva, yva, epochs, batch_size, eval_batch_size, seed, device):
    """resnet18 by hand on uint8 images normalised per batch; returns (steps, val loss, val acc)."""
    n = len(Xtr)
    stops = list(range(batch_size, n, batch_size)) + [n]
    if batch_size > 1 and len(stops) > 1 and n - stops[-2] == 1:
        stops.pop(-2)  # like TensorLoader: a trailing one-image batch joins the one before it (batch norm)
    bounds = list(zip([0] + stops[:-1], stops))
    steps = 0
    val_loss = val_acc = float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        # same per-epoch order as TensorLoader, so the two runs can be compared weight for weight
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g).to(device)
        X, y = Xtr[perm], ytr[perm]
        loss_sum = 0.0
        for a, b in bounds:
            xb, yb = transform(X[a:b]), y[a:b]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            steps += 1
        train_loss = loss_sum / n  # noqa: F841  (a hand-written loop reports it too)
        model.eval()
        with torch.inference_mode():
            loss_v, correct = 0.0, 0
            for a in range(0, len(Xva), eval_batch_size):
                xb, yb = transform(Xva[a:a + eval_batch_size]), yva[a:a + eval_batch_size]
                out = model(xb)
                loss_v += F.cross_entropy(out, yb).item() * len(yb)
                correct += int((out.argmax(1) == yb).sum())
            val_loss, val_acc = loss_v / len(Xva), correct / len(Xva)
    return steps, val_loss, val_acc


def run_plain(setup, cfg, init_model, epochs):
    model = copy.deepcopy(init_model)
    opt = build_optimizer(cfg, model)  # same optimizer type and hyper-parameters as the Trainer's
    transform = setup.data.transform(setup.device)  # the same per-batch normalisation as the loaders
    Xtr, ytr = (t.to(setup.device) for t in setup.data.splits["train"])
    Xva, yva = (t.to(setup.device) for t in setup.data.splits["val"])
    torch.manual_seed(cfg["seed"])
    gc.collect()
    sync(setup.device)
    c0, t0 = time.process_time(), time.perf_counter()
    steps, vl, va = plain_fit(model, opt, transform, Xtr, ytr, Xva, yva, epochs, cfg["train.batch_size"],
                              cfg["train.eval_batch_size"], cfg["seed"], setup.device)
    sync(setup.device)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return (seconds, cpu), steps, vl, va, model


def run_trainer(setup, cfg, init_model, epochs, counter):
    """Build the Trainer as dlseminar.run.train() does and time fit()."""
    model = copy.deepcopy(init_model)
    train_loader = setup.loader("train", train=True)
    val_loader = setup.loader("val")
    opt = build_optimizer(cfg, model)
    sched = LRSchedule(opt, cfg, len(train_loader), epochs)
    run_dir = Path(tempfile.mkdtemp(prefix="dlsem-bench-"))
    meta = {"config": cfg.to_dict(), "data_info": asdict(setup.data.info), "data_stats": setup.data.stats,
            "num_outputs": setup.task.num_outputs}
    trainer = Trainer(model, setup.task, opt, sched, setup.device, cfg, run_dir, meta)
    counter.reset()
    torch.manual_seed(cfg["seed"])
    gc.collect()
    sync(setup.device)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        c0, t0 = time.process_time(), time.perf_counter()
        state = trainer.fit(train_loader, val_loader, epochs)
        sync(setup.device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    row = state.history[-1]
    files = sorted(p.name for p in run_dir.iterdir())
    shutil.rmtree(run_dir, ignore_errors=True)
    return ((seconds, cpu), state.step, row["val/loss"], row["val/acc"], model, list(counter.files), counter.seconds,
            counter.bytes, files)


def part_trainer(args, load) -> dict:
    sets = ["data.name=shapes", f"data.n_samples={args.n}", "model.name=resnet18", "optim.name=adam",
            f"train.batch_size={args.batch_size}", f"train.epochs={args.epochs}", "early_stop.patience=0",
            f"device={args.device}", "logging.plots=false", *args.sets]
    cfg = resolve(sets=sets)
    setup = build(cfg)
    init_model = copy.deepcopy(setup.model)  # both loops start from these weights
    counter = CheckpointCounter()
    ckpt.save = counter  # the Trainer calls ckpt.save(...) through the module
    ntr, nva = len(setup.data.splits["train"][0]), len(setup.data.splits["val"][0])
    params = sum(p.numel() for p in init_model.parameters())
    stem = "small" if isinstance(init_model.maxpool, torch.nn.Identity) else "imagenet"
    print(f"part 1, Trainer vs plain: shapes {tuple(setup.data.info.in_shape)} train {ntr} / val {nva}, resnet18 "
          f"(stem {stem}, {params / 1e6:.2f} M params), adam lr {cfg['optim.lr']}, batch {args.batch_size}, "
          f"{args.epochs} epoch(s) per fit, checkpoint.min_interval_s {cfg['checkpoint.min_interval_s']}")

    plain_t, trainer_t, ckpt_t, plain_c, trainer_c = [], [], [], [], []
    last, warm = {}, {}
    try:
        for r in range(args.rounds + 1):  # round 0 is the warm-up
            order = ("plain", "trainer") if r % 2 == 0 else ("trainer", "plain")
            for which in order:
                if which == "plain":
                    t, steps, vl, va, model = run_plain(setup, cfg, init_model, args.epochs)
                    last["plain"] = (steps, vl, va, model)
                    warm["plain"] = t[0]
                    if r:
                        plain_t.append(t[0])
                        plain_c.append(t[1])
                else:
                    t, steps, vl, va, model, written, cs, cb, files = run_trainer(setup, cfg, init_model, args.epochs, counter)
                    last["trainer"] = (steps, vl, va, model, written, cb, files)
                    warm["trainer"], warm["ckpt"] = t[0], cs
                    if r:
                        trainer_t.append(t[0])
                        trainer_c.append(t[1])
                        ckpt_t.append(cs)
            now = load.see()
            if r:
                print(f"  round {r}: {order[0]:7s} first   plain {plain_t[-1]:6.2f} s   trainer {trainer_t[-1]:6.2f} s"
                      f"   ratio {trainer_t[-1] / plain_t[-1]:.3f}   (checkpoint writes {len(last['trainer'][4])}, "
                      f"{ckpt_t[-1]:.2f} s)   load {now:.1f}")
            else:
                print(f"  warm-up: plain first   plain {warm['plain']:6.2f} s   trainer {warm['trainer']:6.2f} s"
                      f"   (checkpoint writes {warm['ckpt']:.2f} s)   load {now:.1f}   (discarded)")
    finally:
        ckpt.save = counter.orig

    ps, pvl, pva, pmodel = last["plain"]
    ts, tvl, tva, tmodel, written, wbytes, files = last["trainer"]
    mp, mt = statistics.median(plain_t), statistics.median(trainer_t)
    images = ntr * args.epochs
    diff = max_weight_diff(pmodel, tmodel)
    print(f"steps: plain {ps}, trainer {ts}" + ("" if ps == ts else "   MISMATCH: the loops did different work"))
    print(f"final val: plain acc {pva:.4f} loss {pvl:.4f}   trainer acc {tva:.4f} loss {tvl:.4f}   "
          f"max |weight diff| {diff:.2e}" + ("  (identical)" if diff == 0 else
                                             "  (close)" if diff < 1e-4 else "   WARNING: the runs diverged"))
    mc = statistics.median(ckpt_t)
    print(f"trainer checkpoint writes per fit: {len(written)} ({', '.join(written) or 'none'}), "
          f"{wbytes / 1e6:.0f} MB, median {mc:.2f} s of the fit; run dir held: {', '.join(files)}")
    print(f"median time: plain {mp:.2f} s ({images / mp:.1f} train images/s, {mp / ps * 1e3:.0f} ms/step)   "
          f"trainer {mt:.2f} s ({images / mt:.1f} train images/s, {mt / ts * 1e3:.0f} ms/step)   "
          f"trainer extra {mt - mp:+.2f} s per fit, of which checkpoint writes {mc:.2f} s")
    print("  (images/s: training images of all epochs over the whole fit time, validation included)")
    cratio = statistics.median(trainer_c) / statistics.median(plain_c)
    print(f"cpu-time ratio trainer/plain: {cratio:.3f}  (process CPU time: less disturbed by other load, "
          f"but blind to fsync waits)")
    load.note("part 1")
    mk = statistics.median(t - c for t, c in zip(trainer_t, ckpt_t))
    print(f"ratio without the time inside checkpoint file writes: {mk / mp:.3f}  (for reference only)")
    ratio = mt / mp
    print(f"ratio trainer/plain (median of {args.rounds} rounds): {ratio:.3f}  target <= {TARGET:.2f}"
          f"  {'OK' if ratio <= TARGET else 'OVER TARGET'}")
    return {"plain_ips": images / mp, "trainer_ips": images / mt, "ratio": ratio, "ratio_no_ckpt": mk / mp,
            "cpu_ratio": cratio, "diff": diff, "ckpt_s": mc, "ckpt_mb": wbytes / 1e6, "ckpt_files": len(written)}


# ----------------------------------------------------------------------------- part 2: the data pipeline
def write_folder(root: Path, n_files: int, seed: int = 0) -> tuple[int, list[int]]:
    """n_files shapes images in 3 class folders, PNG and JPEG alternately, of mixed sizes; returns (bytes, sizes)."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    sizes = [24, 32, 48, 64, 100, 128, 160, 256, 320]
    classes = SHAPES[:3]
    total, used = 0, []
    for d in classes:
        (root / d).mkdir(parents=True)
    for i in range(n_files):
        k = i % len(classes)
        size = int(sizes[rng.randint(len(sizes))])
        a = render_shape(rng, classes[k], size, 3, 0.05)
        p = root / classes[k] / (f"img{i:05d}.png" if i % 2 == 0 else f"img{i:05d}.jpg")
        if i % 2 == 0:
            Image.fromarray(a).save(p)
        else:
            Image.fromarray(a).save(p, quality=90)
        total += p.stat().st_size
        used.append(size)
    return total, used


def median_rate(fn, count: int, rounds: int, device, load) -> tuple[float, list[float]]:
    """images/s of fn() (which handles `count` images), median over `rounds` after one warm-up call."""
    times = []
    for r in range(rounds + 1):
        gc.collect()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if r:
            times.append(time.perf_counter() - t0)
        load.see()
    return count / statistics.median(times), times


def loader_rate(setup, rounds, device, load, min_seconds=0.25) -> tuple[float, int]:
    """images/s of iterating Setup.loader('train', train=True) (shuffle + per-batch normalisation)."""
    loader = setup.loader("train", train=True)
    # enough epochs per timing that it lasts about min_seconds
    t0 = time.perf_counter()
    for xb, yb in loader:
        pass
    one = max(time.perf_counter() - t0, 1e-6)
    epochs = max(1, int(min_seconds / one))
    n = len(setup.data.splits["train"][0])
    state = {"epoch": 0}

    def run():
        for _ in range(epochs):
            state["epoch"] += 1
            loader.set_epoch(state["epoch"])
            for xb, yb in loader:
                pass
        return xb

    rate, _ = median_rate(run, n * epochs, rounds, device, load)
    return rate, epochs


def model_rate(setup, cfg, rounds, device, load) -> tuple[float, list[float]]:
    """images/s of resnet18 training steps (forward + backward + Adam step) on batches already normalised in memory."""
    model = copy.deepcopy(setup.model)
    opt = build_optimizer(cfg, model)
    transform = setup.data.transform(device)
    X, y = (t.to(device) for t in setup.data.splits["train"])
    bs = cfg["train.batch_size"]
    batches = [(transform(X[a:a + bs]), y[a:a + bs]) for a in range(0, len(X), bs)]
    batches = [b for b in batches if len(b[1]) > 1]
    n = sum(len(b[1]) for b in batches)
    model.train()

    def run():
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return median_rate(run, n, rounds, device, load)


def part_pipeline(args, load) -> dict:
    base = [f"train.batch_size={args.batch_size}", "model.name=resnet18", "optim.name=adam", f"device={args.device}"]
    shapes_cfg = resolve(sets=["data.name=shapes", f"data.n_samples={args.n}", *base])
    tmp = Path(tempfile.mkdtemp(prefix="dlsem-bench-folder-"))
    out = {}
    try:
        t0 = time.perf_counter()
        nbytes, sizes = write_folder(tmp, args.files)
        wrote = time.perf_counter() - t0
        folder_cfg = resolve(sets=["data.name=folder", f"data.path={tmp}", *base])
        print(f"\npart 2, data pipeline vs model: shapes n={args.n}; folder {args.files} files (PNG/JPEG alternately, "
              f"{min(sizes)}-{max(sizes)} px, median {int(statistics.median(sizes))} px, {nbytes / 1e6:.1f} MB, "
              f"3 classes; written in {wrote:.1f} s, page cache warm), decoded and resized to 32 px; batch {args.batch_size}")

        # (a) the one-time dataset build: generate / decode, split, fit channel stats
        shapes_build, sb_t = median_rate(lambda: build_data(shapes_cfg), args.n, args.rounds, torch.device("cpu"), load)
        folder_build, fb_t = median_rate(lambda: build_data(folder_cfg), args.files, args.rounds, torch.device("cpu"), load)

        # (b) the per-epoch loader, (c) the model's own step rate
        device = torch.device(args.device)
        s_setup, f_setup = build(shapes_cfg), build(folder_cfg)
        shapes_loader, s_ep = loader_rate(s_setup, args.rounds, device, load)
        folder_loader, f_ep = loader_rate(f_setup, args.rounds, device, load)
        model, m_t = model_rate(s_setup, shapes_cfg, args.rounds, device, load)
        ntr_s, ntr_f = len(s_setup.data.splits["train"][0]), len(f_setup.data.splits["train"][0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"(c) model training step rate (resnet18 fwd+bwd+adam, batch {args.batch_size}, {ntr_s} images per pass, "
          f"median of {args.rounds}): {model:.1f} images/s   (passes: {', '.join(f'{t:.2f}' for t in m_t)} s)")
    print(f"(b) per-epoch loader, Setup.loader('train', train=True): shuffle + per-batch uint8 -> normalised float32")
    for name, rate, ep, ntr in (("shapes", shapes_loader, s_ep, ntr_s), ("folder", folder_loader, f_ep, ntr_f)):
        print(f"    {name:6s}: {rate:12,.0f} images/s  ({ep} epochs of {ntr} per timing)   pipeline/model "
              f"{rate / model:9,.0f}x   (the loader is {model / rate * 100:.3f}% of an epoch's step time)")
    print(f"(a) one-time dataset build, build_data (generate or decode + resize, split, channel stats), median of {args.rounds}")
    for name, rate, n, t in (("shapes", shapes_build, args.n, sb_t), ("folder", folder_build, args.files, fb_t)):
        print(f"    {name:6s}: {rate:12,.0f} images/s  ({n} images in {statistics.median(t):.2f} s)   pipeline/model "
              f"{rate / model:9,.1f}x   (once per run: as long as {n / rate / (ntr_s / model):.3f} training "
              f"epoch(s) of {ntr_s} images)")
    worst = min(shapes_loader, folder_loader) / model
    ok = worst >= PIPELINE_MIN
    print(f"verdict: {'OK' if ok else 'BOTTLENECK'}: the per-epoch pipeline delivers {worst:,.0f}x the images/s the "
          f"model trains on (threshold {PIPELINE_MIN:.0f}x), so on this CPU "
          + ("the pipeline is not the bottleneck" if ok else "the pipeline IS a bottleneck"))
    load.note("part 2")
    out.update(model_ips=model, shapes_loader=shapes_loader, folder_loader=folder_loader, shapes_build=shapes_build,
               folder_build=folder_build, verdict=ok, worst=worst)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cpus = os.cpu_count()
    print(f"image throughput: torch {torch.__version__}, {args.threads} thread(s) on {cpus} CPUs, device {args.device}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    t_start = time.perf_counter()
    res = {}
    if args.part in ("all", "trainer"):
        load = Load(args.threads)
        res.update(part_trainer(args, load))
        res["load1"] = load.peak
    if args.part in ("all", "pipeline"):
        load = Load(args.threads)
        res.update(part_pipeline(args, load))
        res["load2"] = load.peak

    print(f"\nsummary ({time.perf_counter() - t_start:.0f} s, {args.threads} thread(s), {cpus} CPUs):")
    if "ratio" in res:
        print(f"  resnet18 3x32x32, batch {args.batch_size}, {args.epochs} epoch(s): plain {res['plain_ips']:.1f} images/s, "
              f"trainer {res['trainer_ips']:.1f} images/s; max |weight diff| {res['diff']:.2e}; peak load {res['load1']:.1f}")
        print(f"  trainer checkpoint writes: {res['ckpt_files']} files, {res['ckpt_mb']:.0f} MB, {res['ckpt_s']:.2f} s per fit; "
              f"ratio without them {res['ratio_no_ckpt']:.3f}; cpu-time ratio {res['cpu_ratio']:.3f}")
    if "model_ips" in res:
        print(f"  model step rate {res['model_ips']:.1f} images/s; loader shapes {res['shapes_loader']:,.0f} / folder "
              f"{res['folder_loader']:,.0f} images/s ({res['worst']:,.0f}x the model at worst); build shapes "
              f"{res['shapes_build']:,.0f} / folder {res['folder_build']:,.0f} images/s; peak load {res['load2']:.1f}")
        print(f"  pipeline: {'not the bottleneck' if res['verdict'] else 'BOTTLENECK'} "
              f"(threshold {PIPELINE_MIN:.0f}x the model's images/s)")
    if "ratio" in res:
        print(f"ratio trainer/plain (median of {args.rounds} rounds): {res['ratio']:.3f}  target <= {TARGET:.2f}"
              f"  {'OK' if res['ratio'] <= TARGET else 'OVER TARGET'}")
    return 0


if __name__ == "__main__":
    run(main, "image_throughput")
