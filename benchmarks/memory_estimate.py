"""The training-step memory estimate (dlseminar/memory.py) against one real step, per config.

For each config a fresh process builds the run (data, model), asks footprint.estimate_step, then
runs one real training step (forward, backward, optimizer step) of the first training batch and
reads the rise of its peak resident memory (Linux /proc/self/status VmHWM, reset through
/proc/self/clear_refs just before the step). It prints estimate, measured rise and their ratio,
and the time the estimate took. On the CPU only (what the estimate counts on a GPU is the same
arithmetic, compared there with torch.cuda.mem_get_info).

    .venv/bin/python benchmarks/memory_estimate.py

It reports; it always exits 0 (the tests gate, not the benchmark).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

CONFIGS = [
    ["data.name=moons", "model.name=mlp", "train.batch_size=full"],
    ["data.name=digits", "model.name=mlp", "train.batch_size=256"],
    ["data.name=shapes", "data.n_samples=600", "model.name=cnn", "train.batch_size=full"],
    ["data.name=shapes", "data.n_samples=600", "model.name=vgg11", "train.batch_size=128"],
    ["data.name=shapes", "data.n_samples=400", "model.name=resnet18", "train.batch_size=full"],
    ["data.name=shapes_seg", "data.n_samples=200", "model.name=unet", "train.batch_size=32"],
]

CHILD = r"""
import json, sys, time, torch
from dlseminar import assemble, footprint
from dlseminar.config import resolve
from dlseminar.engine.optim import build_optimizer

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))

cfg = resolve(None, json.loads(sys.argv[1]) + ["device=cpu"], {})
setup = assemble.build(cfg)
t0 = time.perf_counter()
step = footprint.estimate_step(cfg, setup)
seconds = time.perf_counter() - t0
opt = build_optimizer(cfg, setup.model)
batch = next(iter(setup.loader("train", train=True)))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident size
before = status("VmRSS")
setup.model.train()
loss, _ = setup.task.training_step(setup.model, batch)
loss.backward()
opt.step()
print(json.dumps({"what": step.what, "estimate": step.need, "parts": step.parts, "measured": status("VmHWM") - before,
                  "seconds": seconds}))
"""


def main() -> None:
    print(f"{'config':58s} {'estimate':>10s} {'measured':>10s} {'ratio':>6s} {'est. time':>9s}")
    for sets in CONFIGS:
        p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sets)], capture_output=True, text=True, cwd=ROOT)
        if p.returncode:
            print(f"{' '.join(sets)[:58]:58s} failed: {p.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        ratio = r["estimate"] / max(r["measured"], 1)
        print(f"{' '.join(s.split('=')[1] for s in sets)[:58]:58s} {r['estimate'] / 1e6:8.0f}MB {r['measured'] / 1e6:8.0f}MB "
              f"{ratio:6.2f} {r['seconds'] * 1000:7.1f}ms")


if __name__ == "__main__":
    from _common import run as report

    report(main, "memory_estimate")
