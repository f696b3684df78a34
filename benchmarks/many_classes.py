"""Many classes end to end: peak resident memory and wall time of train, eval and report on a K-class CSV.

Writes a CSV of K classes (default 1,000) x 20 rows each x 20 features (integer target 0..K-1; the CSV
reader's rule makes more than 20 distinct integers a regression target, so task=classification is
set), then runs in a fresh process each, measuring that process alone:

    dlsem train --data csv --set data.path=... --set task=classification --epochs 2
    dlsem eval RUN/best.pt
    dlsem report RUN

and prints each command's exit code, peak RSS (getrusage RUSAGE_CHILDREN of a wrapper process whose
only child is the command), wall time, and the sizes of confusion_matrix.png, summary.json and
report.html. The confusion matrix used to be a figure of 0.5 inch per class: 1,000 classes took
about 24 GB; now two fixed panels.

    .venv/bin/python benchmarks/many_classes.py [--classes 1000] [--keep DIR]

It reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
           "p = subprocess.run([sys.executable, '-m', 'dlseminar', *sys.argv[1:]], capture_output=True, text=True); "
           "print(json.dumps({'rc': p.returncode, 'err': p.stderr[-300:], 'out_lines': len(p.stdout.splitlines()), "
           "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'seconds': time.perf_counter() - t}))")


def write_csv(path: Path, k: int, per_class: int = 20, features: int = 20) -> None:
    rng = np.random.RandomState(0)
    y = np.arange(k * per_class) % k
    X = rng.normal(0, 1, (k, features))[y] + rng.normal(0, 0.5, (len(y), features))
    with open(path, "w") as f:
        f.write(",".join([*(f"f{i}" for i in range(features)), "target"]) + "\n")
        for row, t in zip(X, y):
            f.write(",".join(f"{v:.4f}" for v in row) + f",{t}\n")


def measure(args: list[str], cwd: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, cwd=cwd,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    return json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temporary one)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        csv = work / f"c{a.classes}.csv"
        write_csv(csv, a.classes)
        run = work / "run"
        steps = [("train", ["train", "--data", "csv", "--set", f"data.path={csv}", "--set", "task=classification",
                            "--epochs", "2", "--out", str(run), "--overwrite"]),
                 ("eval", ["eval", str(run / "best.pt")]),
                 ("report", ["report", str(run)])]
        print(f"{a.classes} classes, {a.classes * 20:,} rows x 20 features")
        for name, args in steps:
            r = measure(args, work)
            print(f"  {name:7s} rc {r['rc']}  peak RSS {r['peak_mb']:7.0f} MB  wall {r['seconds']:6.1f} s"
                  + (f"  ({r['out_lines']} lines on stdout)" if name == "eval" else "")
                  + (f"  stderr: {r['err'].strip()}" if r["rc"] else ""))
        for f in (run / "plots" / "confusion_matrix.png", run / "summary.json", run / "report.html"):
            if f.exists():
                print(f"  {f.relative_to(run)}: {f.stat().st_size / 1e3:.0f} KB")
        png = run / "plots" / "confusion_matrix.png"
        if png.exists():
            from PIL import Image

            with Image.open(png) as im:
                print(f"  confusion_matrix.png: {im.size[0]}x{im.size[1]} px")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import run as report

    report(main, "many_classes")
