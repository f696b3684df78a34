"""SIGTERM and a double Ctrl-C on a real training process."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from conftest import CONFIGS
from dlseminar.config import resolve
from dlseminar.engine import checkpoint as ckpt
from dlseminar.run import train

# moons with dropout, batch 1: 480 steps an epoch, ~0.2 s on a free core; 20 epochs keep the signal inside training
RECIPE = CONFIGS / "moons_mlp_dropout.yaml"
SETS = ["data.n_samples=800", "logging.plots=false", "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0", "train.batch_size=1",
        "train.epochs=20", "early_stop.patience=0"]


def _rows(d: Path):
    with open(d / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def _start(tmp_path, *extra):
    args = [sys.executable, "-m", "dlseminar", "train", str(RECIPE), "--out", "run",
            *[a for s in SETS for a in ("--set", s)], *extra]
    p = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    started = tmp_path / "run/config.yaml"  # written just before the first training step
    deadline = time.time() + 120
    while time.time() < deadline and not started.exists():
        time.sleep(0.02)
    time.sleep(0.5)  # inside the first epoch: a mid-epoch interrupt
    return p


def test_sigterm_writes_last_pt_exits_143_and_the_continuation_is_identical(tmp_path):
    full_dir, _ = train(resolve(RECIPE, sets=SETS + [f"out={tmp_path / 'full'}"]))
    p = _start(tmp_path)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert time.time() - t0 < 5, "SIGTERM must end the run within a few seconds"
    assert "interrupted by SIGTERM" in err and "resume with: dlsem train --resume" in err
    last = ckpt.load(tmp_path / "run/last.pt")
    assert last["epoch"] < 20
    train(None, resume=str(tmp_path / "run/last.pt"))
    a = torch.load(full_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "run/last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(tmp_path / "run") == _rows(full_dir)


def test_sigterm_after_training_still_exits_143_with_a_line(tmp_path):
    """Between the end of fit() and summary.json (test metrics, plots) SIGTERM is not a silent kill."""
    from dlseminar import run

    p = subprocess.Popen([sys.executable, "-c", "import time, dlseminar.run as r; orig = r.make_plots\n"
                          "def slow(*a, **k):\n    print('PLOTS', flush=True); time.sleep(30)\n"
                          "r.make_plots = slow\nimport sys; sys.argv = ['dlsem', 'train', '--epochs', '1', '--out', 'run']\n"
                          "from dlseminar.cli import main; main()"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = ""
    deadline = time.time() + 120
    while "PLOTS" not in line and time.time() < deadline:
        line = p.stdout.readline()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err, err
    assert ckpt.load(tmp_path / "run/last.pt")["epoch"] == 1  # the finished training is on disk
    assert run  # (imported to be sure the module the subprocess patches exists)


def test_second_ctrl_c_leaves_at_once_and_corrupts_nothing(tmp_path):
    p = _start(tmp_path)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert time.time() - t0 < 5
    assert "Traceback" not in err
    assert not list((tmp_path / "run").glob(ckpt.TMP_PREFIX + "*"))
    for name in ("last.pt", "best.pt"):
        if (tmp_path / "run" / name).exists():
            ckpt.load(tmp_path / "run" / name)  # whichever file exists is whole
