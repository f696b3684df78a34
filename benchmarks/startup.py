"""Start-up cost: the whole `dlsem train` process against a hand-written script doing the same training.

    .venv/bin/python benchmarks/startup.py [--rounds 5] [--epochs 30] [--threads 1] [--src DIR]

dlsem:  `python -m dlseminar train configs/digits_mlp.yaml --epochs 30 --patience 0 --device cpu
        --out TMP --overwrite`, a fresh process that writes everything a run writes (config.yaml,
        metrics.csv, best.pt/last.pt, summary.json, plots/*.png).
script: a fresh process running a script this benchmark writes to a temp file: what a careful person
        writes by hand for the same lesson. The recipe's MLP (hidden sizes, activation and dropout read
        from configs/digits_mlp.yaml), scikit-learn's digits with dlseminar's default stratified
        train/val/test split (the same samples), standardised on the training split, Adam at the
        recipe's lr and batch size, the same epochs, val loss and accuracy after every epoch, the test
        split at the end. It writes nothing.
Both run with OMP_NUM_THREADS=1 (--threads), on the CPU.
The two alternate (ABBA: script-dlsem, dlsem-script, ...) after one discarded warm-up pair, for
--rounds rounds; the headline is the median of the per-round ratios dlsem/script (target <= 1.10),
with the process CPU-time ratio beside it (less disturbed by other load).
Then the import time, from `python -X importtime` (summed self times, median of --import-reps):
`import dlseminar.cli` (what `dlsem --help` pays), and every import a tabular run makes until its
end (the digits MLP, 1 epoch, logging.plots=false), with the heavy packages among them.
--src DIR times another checkout of dlseminar (e.g. an older commit's) for a before/after figure.
This script reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run  # noqa: E402  (benchmarks/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "digits_mlp.yaml"
TARGET = 1.10
HEAVY = ("torchvision", "matplotlib", "sklearn", "scipy", "PIL", "torch._dynamo", "torch._inductor", "tensorboard")

SCRIPT = '''\
"""The digits MLP by hand (benchmarks/startup.py wrote this file)."""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed({seed})
digits = load_digits()
X, y = digits.data, digits.target
idx = np.arange(len(y))
n_test, n_val = round({test} * len(y)), round({val} * len(y))
rest, test = train_test_split(idx, test_size=n_test, random_state={seed}, stratify=y)
train, val = train_test_split(rest, test_size=n_val, random_state={seed} + 1, stratify=y[rest])
mean, std = X[train].mean(0), X[train].std(0)
std[std < 1e-12] = 1.0
Xs = torch.tensor((X - mean) / std, dtype=torch.float32)
Y = torch.tensor(y, dtype=torch.int64)
(Xtr, ytr), (Xva, yva), (Xte, yte) = [(Xs[ix], Y[ix]) for ix in (train, val, test)]

layers, n_in = [], Xs.shape[1]
for h in {hidden}:
    layers += [nn.Linear(n_in, h), nn.ReLU(), nn.Dropout({dropout})]
    n_in = h
model = nn.Sequential(*layers, nn.Linear(n_in, 10))
opt = torch.optim.Adam(model.parameters(), lr={lr})


def evaluate(X, y):
    model.eval()
    with torch.no_grad():
        out = model(X)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


for epoch in range({epochs}):
    model.train()
    perm = torch.randperm(len(Xtr))
    total = 0.0
    for i in range(0, len(Xtr), {batch}):
        xb, yb = Xtr[perm[i:i + {batch}]], ytr[perm[i:i + {batch}]]
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(yb)
    val_loss, val_acc = evaluate(Xva, yva)
    print(f"epoch {{epoch + 1}} train loss {{total / len(Xtr):.4f}} val loss {{val_loss:.4f}} val acc {{val_acc:.4f}}")
test_loss, test_acc = evaluate(Xte, yte)
print(f"test loss {{test_loss:.4f}} test acc {{test_acc:.4f}}")
'''

# Runs a tabular training in-process (python -X importtime this) and prints which heavy packages it loaded.
TABULAR_RUN = '''\
import sys
from dlseminar.cli import main
sys.argv = ["dlsem", "train", {recipe!r}, "--epochs", "1", "--device", "cpu", "--out", {out!r}, "--overwrite",
            "--set", "logging.plots=false"]
try:
    main()
except SystemExit as e:
    if e.code:
        raise
print("LOADED " + " ".join(h for h in {heavy!r} if h in sys.modules))
'''


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="timed rounds of (script, dlsem), after one warm-up pair")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS for both processes (default 1, as engine_overhead.py; 0: unset, torch's "
                        "own choice, whose spinning threads make a busy machine's figures erratic)")
    p.add_argument("--import-reps", type=int, default=3, help="runs per import-time figure (median)")
    p.add_argument("--src", type=Path, default=ROOT, help="checkout whose dlseminar is timed (default: this one)")
    return p.parse_args(argv)


def recipe_values(epochs: int) -> dict:
    """The recipe's model and optimisation settings, with dlseminar's defaults where it is silent."""
    r = yaml.safe_load(RECIPE.read_text())
    model, optim, train, data = r["model"], r["optim"], r["train"], r.get("data", {})
    if model["name"] != "mlp" or model.get("activation", "relu") != "relu" or optim["name"] != "adam":
        raise SystemExit(f"{RECIPE.name} is no longer a ReLU MLP trained with Adam: update the hand-written script")
    return dict(seed=r.get("seed", 0), val=data.get("val_split", 0.2), test=data.get("test_split", 0.2),
                hidden=list(model["hidden"]), dropout=float(model.get("dropout", 0.0)), lr=float(optim["lr"]),
                batch=int(train["batch_size"]), epochs=epochs)


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one process; a failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def import_times(stderr: str) -> tuple[float, dict[str, float]]:
    """Sum of -X importtime's self times (s), and each package's cumulative time where it was first imported."""
    total, first = 0, {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s(\s*)(\S+)", line)
        if m:
            total += int(m.group(1))
            first.setdefault(m.group(4), int(m.group(2)) / 1e6)
    return total / 1e6, first


def importtime(code: str, env: dict, cwd: Path, reps: int) -> tuple[float, dict[str, float], str]:
    """Median summed import time of `python -X importtime -c code` over reps runs; heavy packages' times; stdout."""
    runs = []
    for _ in range(reps):
        p = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=cwd, capture_output=True,
                           text=True)
        if p.returncode:
            raise RuntimeError(f"import-time run failed:\n{p.stderr[-3000:]}")
        runs.append((*import_times(p.stderr), p.stdout))
    runs.sort(key=lambda r: r[0])
    return runs[len(runs) // 2]


def main(argv=None) -> int:
    args = parse_args(argv)
    src = args.src.resolve()
    env = dict(os.environ, PYTHONPATH=str(src))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    values = recipe_values(args.epochs)
    tmp = Path(tempfile.mkdtemp(prefix="dlsem-startup-"))
    try:
        script = tmp / "digits_by_hand.py"
        script.write_text(SCRIPT.format(**values))
        out = tmp / "run"
        dlsem = [sys.executable, "-m", "dlseminar", "train", str(RECIPE), "--epochs", str(args.epochs), "--patience",
                 "0", "--device", "cpu", "--out", str(out), "--overwrite"]
        plain = [sys.executable, str(script)]
        print(f"startup: {RECIPE.name} (mlp hidden {values['hidden']}, dropout {values['dropout']}, adam lr "
              f"{values['lr']}, batch {values['batch']}), {args.epochs} epochs, device cpu, "
              f"OMP_NUM_THREADS {args.threads or 'unset'}, dlseminar from {src}")
        load0 = os.getloadavg()[0]
        times = {"dlsem": [], "script": []}
        ratios = []
        last = {}
        for r in range(args.rounds + 1):  # round 0 warms the page cache and is discarded
            order = ("script", "dlsem") if r % 2 == 0 else ("dlsem", "script")
            for which in order:
                wall, cpu, stdout = timed(dlsem if which == "dlsem" else plain, env, tmp)
                last[which] = stdout
                if r:
                    times[which].append((wall, cpu))
            if r:
                (dw, dc), (sw, sc) = times["dlsem"][-1], times["script"][-1]
                ratios.append((dw / sw, dc / sc))
                print(f"  round {r}: {order[0]} first   script {sw:6.2f} s (cpu {sc:6.2f})   dlsem {dw:6.2f} s "
                      f"(cpu {dc:6.2f})   ratio {dw / sw:.3f} (cpu {dc / sc:.3f})")
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        print(f"dlsem wrote: {', '.join(written)}")
        summary = json.loads((out / "summary.json").read_text())
        acc = re.search(r"test acc (\S+)", last["script"])
        print(f"test acc: dlsem {summary['test']['test/acc']:.4f}   script {acc.group(1) if acc else '?'}  "
              f"(the same split; their initial weights and batch orders differ)")
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        print(f"median time: script {med['script'][0]:.2f} s (cpu {med['script'][1]:.2f} s)   dlsem "
              f"{med['dlsem'][0]:.2f} s (cpu {med['dlsem'][1]:.2f} s)   dlsem extra "
              f"{med['dlsem'][0] - med['script'][0]:+.2f} s")

        code = "import dlseminar.cli"
        cli_s, _, _ = importtime(code, env, tmp, args.import_reps)
        code = TABULAR_RUN.format(recipe=str(RECIPE), out=str(tmp / "imports"), heavy=HEAVY)
        run_s, first, stdout = importtime(code, env, tmp, args.import_reps)
        loaded = stdout.rsplit("LOADED", 1)[-1].split()
        heavy = [h for h in HEAVY if h in first]
        print(f"import time (python -X importtime, summed self times, median of {args.import_reps}): "
              f"`import dlseminar.cli` {cli_s:.2f} s;  a tabular run (digits mlp, 1 epoch, plots off), "
              f"every import to its end: {run_s:.2f} s")
        print("  heavy packages it imports (cumulative, where first imported): "
              + (", ".join(f"{h} {first[h]:.2f} s" for h in heavy) or "none")
              + f"   (in sys.modules at its end: {', '.join(loaded) or 'none'})")

        load = max(load0, os.getloadavg()[0])
        if load > (os.cpu_count() or 1) - 0.5:
            print(f"note: load average was {load:.1f} on {os.cpu_count()} CPUs during the run: other work competes, "
                  f"wall-clock figures are noisy (the CPU-time ratio less so)")
        ratio = statistics.median(w for w, _ in ratios)
        cratio = statistics.median(c for _, c in ratios)
        print(f"ratio dlsem/script (median of {args.rounds} rounds): {ratio:.3f}  (cpu time {cratio:.3f})  "
              f"target <= {TARGET:.2f}  {'OK' if ratio <= TARGET else 'OVER TARGET'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run(main, "startup")
