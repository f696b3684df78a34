"""`make gpu-check`: the GPU path, checked where a CUDA device exists.

1. one short epoch of each task (classification on shapes, regression on plane, segmentation
   shapes_seg with U-Net, detection shapes_det with the small Faster R-CNN), each from its lesson
   recipe, on cuda in: fp32, bf16 autocast, fp16 autocast + GradScaler, channels_last, torch.compile;
2. train.deterministic: true twice with one seed gives bit-identical weights (sha256 of best.pt's);
3. with two or more GPUs: `dlsem train --devices 2` (torchrun, NCCL) ends with a 2-process run;
4. with data/cifar-10-batches-py present: configs/cifar10_resnet18.yaml timed airbench-style (the
   uint8 images resident on the GPU, normalised per batch there; bf16 autocast, channels_last).

It prints a table of what ran and what passed, and exits 1 if anything failed. Without CUDA it says
so and exits 0. Every run's own output goes to a log in the work folder (a temporary one unless
--keep DIR); a failure shows its last lines.

    .venv/bin/python benchmarks/gpu_check.py [--keep DIR] [--cifar-epochs 2] [--skip-compile]
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

CONFIGS = ROOT / "configs"
COMMON = ["train.epochs=1", "early_stop.patience=0", "logging.plots=false", "device=cuda", "seed=0"]
# (task, lesson recipe, settings that keep one epoch short)
TASKS = [
    ("classification", "shapes_cnn.yaml", ["data.n_samples=2000"]),
    ("regression", "plane_regression.yaml", ["data.n_samples=2000"]),
    ("segmentation", "shapes_unet.yaml", ["data.n_samples=256"]),
    ("detection", "shapes_rcnn.yaml", ["data.n_samples=128"]),
]
MODES = {
    "fp32": ["train.precision=32"],
    "bf16": ["train.precision=bf16"],
    "fp16+GradScaler": ["train.precision=16"],
    "channels_last": ["train.channels_last=true"],
    "compile": ["train.compile=true"],
}
CIFAR = ["train.precision=bf16", "train.channels_last=true", "logging.plots=false", "device=cuda",
         "checkpoint.min_interval_s=0"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    p.add_argument("--cifar-epochs", type=int, default=2, help="epochs of the CIFAR-10 timing (0: skip it)")
    p.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile runs (slow to compile)")
    return p.parse_args(argv)


class Table:
    """The rows printed at the end: check, setting, PASS/FAIL/SKIP, seconds, detail."""

    def __init__(self):
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, check: str, setting: str, status: str, seconds: float | None, detail: str) -> None:
        self.rows.append((check, setting, status, "" if seconds is None else f"{seconds:.1f}", detail))
        print(f"[{status}] {check} {setting}: {detail}", flush=True)

    def show(self) -> None:
        head = ("check", "setting", "status", "s", "detail")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        for r in [head, *self.rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])

    @property
    def failed(self) -> bool:
        return any(r[2] == "FAIL" for r in self.rows)


def train_run(folder: Path, recipe: str, sets: list[str]):
    """One training run in this process, its output in folder/run.log; (summary, seconds)."""
    from dlseminar.config import resolve
    from dlseminar.run import train

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(folder / "run.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        _, summary = train(resolve(CONFIGS / recipe, sets=[*sets, f"out={folder / 'run'}"]), overwrite=True)
    torch.cuda.synchronize()
    return summary, time.perf_counter() - t0


def tail(folder: Path, n: int = 3) -> str:
    lines = (folder / "run.log").read_text(errors="replace").strip().splitlines() if (folder / "run.log").exists() else []
    return " | ".join(lines[-n:])[-400:]


def finite_metrics(summary) -> dict:
    """The run's test metrics, or {} when one is not finite."""
    test = dict(summary.test or {})
    return test if test and all(math.isfinite(v) for v in test.values()) else {}


def check_tasks(work: Path, table: Table, skip_compile: bool) -> None:
    for task, recipe, sets in TASKS:
        for mode, extra in MODES.items():
            if mode == "compile" and skip_compile:
                table.add("epoch", f"{task} {mode}", "SKIP", None, "--skip-compile")
                continue
            folder = work / f"{task}-{mode}"
            try:
                summary, seconds = train_run(folder, recipe, [*COMMON, *sets, *extra])
            except Exception as e:  # a UserError, a CUDA error, a compile failure: each reported, the rest go on
                table.add("epoch", f"{task} {mode}", "FAIL", None, f"{type(e).__name__}: {str(e)[:200]} {tail(folder)}")
                continue
            finally:
                torch.compiler.reset()  # a compiled model's caches must not reach the next run
                torch.cuda.empty_cache()
            test = finite_metrics(summary)
            problems = []
            if not (summary.device or "").startswith("cuda"):
                problems.append(f"ran on {summary.device}")
            if not test:
                problems.append(f"test metrics not finite: {summary.test}")
            if mode.startswith("fp16"):  # the GradScaler's state is in last.pt: it was used
                last = torch.load(folder / "run" / "last.pt", map_location="cpu", weights_only=True)
                if not (last.get("scaler") or {}).get("scale"):
                    problems.append("no GradScaler state in last.pt")
            shown = ", ".join(f"{k} {v:.3g}" for k, v in list(test.items())[:2])
            table.add("epoch", f"{task} {mode}", "FAIL" if problems else "PASS", seconds, "; ".join(problems) or shown)


def weights_hash(path: Path) -> str:
    model = torch.load(path, map_location="cpu", weights_only=True)["model"]
    h = hashlib.sha256()
    for k in sorted(model):
        h.update(k.encode())
        h.update(model[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def check_determinism(work: Path, table: Table) -> None:
    for task, recipe, sets in TASKS:
        if task not in ("classification", "segmentation"):
            continue
        hashes, seconds = [], 0.0
        try:
            for i in range(2):
                folder = work / f"deterministic-{task}-{i}"
                _, s = train_run(folder, recipe, [*COMMON, *sets, "train.deterministic=true"])
                hashes.append(weights_hash(folder / "run" / "best.pt"))
                seconds += s
        except Exception as e:  # e.g. an op without a deterministic CUDA kernel raises
            table.add("deterministic", task, "FAIL", None, f"{type(e).__name__}: {str(e)[:200]}")
            continue
        same = hashes[0] == hashes[1]
        table.add("deterministic", task, "PASS" if same else "FAIL", seconds,
                  f"two runs, weights sha256 {hashes[0][:12]}" + ("" if same else f" vs {hashes[1][:12]}"))


def check_ddp(work: Path, table: Table) -> None:
    n = torch.cuda.device_count()
    if n < 2:
        table.add("ddp", "2 processes, NCCL", "SKIP", None, f"{n} GPU here; DDP needs 2")
        return
    task, recipe, sets = TASKS[0]
    out = work / "ddp"
    args = [sys.executable, "-m", "dlseminar", "train", str(CONFIGS / recipe), "--devices", "2",
            *[a for s in [*COMMON, *sets, f"out={out}"] for a in ("--set", s)]]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    t0 = time.perf_counter()
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.perf_counter() - t0
    (work / "ddp.log").write_text(p.stdout + p.stderr)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    ok = p.returncode == 0 and summary.get("processes") == 2 and str(summary.get("device", "")).startswith("cuda")
    said = f"{task}: processes {summary.get('processes')} on {summary.get('device')}, test {summary.get('test')}"
    detail = said if p.returncode == 0 else f"rc {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1][:300]}"
    table.add("ddp", "2 processes, NCCL", "PASS" if ok else "FAIL", seconds, detail)


def check_cifar(work: Path, table: Table, epochs: int) -> None:
    data = ROOT / "data"
    if epochs < 1:
        table.add("cifar10 resnet18", "bf16, channels_last", "SKIP", None, "--cifar-epochs 0")
        return
    if not (data / "cifar-10-batches-py").is_dir():
        table.add("cifar10 resnet18", "bf16, channels_last", "SKIP", None, f"no {data / 'cifar-10-batches-py'}")
        return
    folder = work / "cifar10"
    try:
        summary, seconds = train_run(folder, "cifar10_resnet18.yaml", [*CIFAR, f"train.epochs={epochs}",
                                                                         f"data.root={data}"])
    except Exception as e:
        table.add("cifar10 resnet18", "bf16, channels_last", "FAIL", None, f"{type(e).__name__}: {str(e)[:200]}")
        return
    with open(folder / "run" / "metrics.csv", newline="") as f:
        per_epoch = [float(r["seconds"]) for r in csv.DictReader(f) if r.get("seconds")]
    test = finite_metrics(summary)
    timing = f"{min(per_epoch):.1f} s/epoch at best" if per_epoch else f"{seconds / epochs:.1f} s/epoch"
    table.add("cifar10 resnet18", "bf16, channels_last", "PASS" if test else "FAIL", seconds,
              f"{epochs} epochs, {timing}, test acc {test.get('test/acc', float('nan')):.3f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False): nothing to check")
        return 0
    print(f"gpu-check on {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} GPU), torch {torch.__version__}")
    table = Table()
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="gpu-check-")) as w:
        work = Path(w)
        work.mkdir(parents=True, exist_ok=True)
        check_tasks(work, table, args.skip_compile)
        check_determinism(work, table)
        check_ddp(work, table)
        check_cifar(work, table, args.cifar_epochs)
    print()
    table.show()
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
