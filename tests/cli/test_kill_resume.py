"""SIGKILL at many points of a real training process, resume, and get the uninterrupted run bit for bit.

The recipe shuffles, uses dropout and random augmentation (flip + crop), and writes step-level
checkpoints. Each kill point is hit from inside the process by a real SIGKILL (kill_runner.py),
so nothing of ours runs after it: not a signal handler, not a `finally`.
"""
from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dlseminar.config import resolve
from dlseminar.engine import checkpoint as ckpt
from dlseminar.run import train

HERE = Path(__file__).resolve().parent
SETS = ["data.name=shapes", "data.n_samples=150", "data.image_size=16", "model.name=cnn", "model.dropout=0.3",
        "data.augment=hflip,crop", "train.batch_size=16", "train.eval_batch_size=8", "train.epochs=3",
        "early_stop.patience=0", "checkpoint.every_n_steps=3", "checkpoint.min_interval_s=0",
        "checkpoint.max_overhead=0", "logging.plots=false"]
# 90 training images: 6 steps an epoch, 18 in all; 30 validation images: 4 batches an epoch
KILL_POINTS = ["step:2", "step:5", "step:8", "step:13", "step:17", "eval:2", "eval:6", "eval:11",
               "write:1", "write:4", "write:7", "replace:3", "replace:6"]
# and three moments drawn at random (a fixed draw: a failure can be replayed) among every step, validation
# batch, checkpoint write, rename and metrics commit of the run
KILL_POINTS += [f"any:{k}" for k in random.Random(12).sample(range(1, 50), 3)]


def _rows(d: Path):
    with open(d / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_dir, summary = train(resolve(sets=SETS + [f"out={out}"]))
    return run_dir, summary


def assert_not_ahead(run: Path, older: dict | None = None) -> None:
    """What a SIGKILL left: metrics.csv has no row and config.yaml no setting that the last.pt a resume
    reads does not hold (no last.pt: no rows at all). In a resume, config.yaml may still be the `older`
    config (behind: last.pt renamed, config.yaml not yet), never one that last.pt does not hold yet."""
    rows = _rows(run) if (run / "metrics.csv").exists() else []
    if not (run / "last.pt").exists():
        assert rows == [], f"{len(rows)} metrics rows but no last.pt"
        return
    last = torch.load(run / "last.pt", weights_only=True)
    assert len(rows) <= last["epoch"], f"metrics.csv has {len(rows)} rows, last.pt holds {last['epoch']} epochs"
    held = last["history"][:len(rows)]
    assert [(int(r["epoch"]), float(r["train/loss"])) for r in rows] == [(h["epoch"], h["train/loss"]) for h in held]
    if (run / "config.yaml").exists():
        assert yaml.safe_load((run / "config.yaml").read_text()) in (last["config"], older)


def _equal_states(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif isinstance(x, dict):
            if not _equal_states(x, y):
                return False
        elif isinstance(x, list) and x and isinstance(x[0], dict):
            if len(x) != len(y) or not all(_equal_states(p, q) for p, q in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_resume_is_bit_identical(point, reference, tmp_path):
    ref_dir, ref_summary = reference
    args = ["train", *[a for s in SETS for a in ("--set", s)], "--out", str(tmp_path / "run")]
    p = subprocess.run([sys.executable, str(HERE / "kill_runner.py"), point, *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == -9, f"{point}: not killed (rc {p.returncode})\n{p.stderr[-2000:]}"
    run = tmp_path / "run"
    assert_not_ahead(run)
    last = run / "last.pt"
    if last.exists():
        ckpt.load(last)  # the newest checkpoint after the kill is whole
        run_dir, summary = train(None, resume=str(last))
    else:  # killed before the first checkpoint: nothing to keep, start again
        run_dir, summary = train(resolve(sets=SETS + [f"out={run}"]), overwrite=True)
    assert not list(run.glob(ckpt.TMP_PREFIX + "*")), "a temp file from the killed write was left behind"
    a = torch.load(ref_dir / "last.pt", weights_only=True)
    b = torch.load(run / "last.pt", weights_only=True)
    assert _equal_states(a["model"], b["model"]), point
    assert _equal_states(a["optimizer"], b["optimizer"]), point
    assert _equal_states(torch.load(ref_dir / "best.pt", weights_only=True)["model"],
                         torch.load(run / "best.pt", weights_only=True)["model"]), point
    assert _rows(run) == _rows(ref_dir), point
    assert summary.test == ref_summary.test, point


# epoch-end checkpoints spaced out (here: none before the end), no step-level ones: metrics rows wait for last.pt
THROTTLED = [s for s in SETS if not s.startswith("checkpoint.")] + ["checkpoint.min_interval_s=3600"]


@pytest.mark.parametrize("point", ["eval:6", "step:14"])
def test_sigkill_between_checkpoints_leaves_no_metrics_row_ahead_of_last_pt(point, tmp_path):
    args = ["train", *[a for s in THROTTLED for a in ("--set", s)], "--out", str(tmp_path / "run")]
    p = subprocess.run([sys.executable, str(HERE / "kill_runner.py"), point, *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == -9, f"{point}: not killed (rc {p.returncode})\n{p.stderr[-2000:]}"
    run = tmp_path / "run"
    assert (run / "config.yaml").exists() and not (run / "last.pt").exists()  # epochs done, none written yet
    assert_not_ahead(run)


# killed at the resume's first step (nothing written yet), just after its first last.pt is renamed into place
# (config.yaml not rewritten yet: behind, never ahead), and at a step after that first checkpoint
@pytest.mark.parametrize("point, epochs", [("step:1", 1), ("replace:1", 1), ("step:5", 3)])
def test_sigkill_in_a_resume_never_leaves_config_yaml_ahead_of_last_pt(point, epochs, tmp_path):
    """A resume with more epochs rewrites config.yaml once its first last.pt holds the new config, not before,
    and only then drops the summary.json of the shorter run (which no longer describes the run)."""
    run = tmp_path / "run"
    train(resolve(sets=[s for s in SETS if not s.startswith("train.epochs")] + ["train.epochs=1", f"out={run}"]))
    older = yaml.safe_load((run / "config.yaml").read_text())
    args = ["train", "--resume", str(run / "last.pt"), "--epochs", "3"]
    p = subprocess.run([sys.executable, str(HERE / "kill_runner.py"), point, *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == -9, f"{point}: not killed (rc {p.returncode})\n{p.stderr[-2000:]}"
    assert_not_ahead(run, older)
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == epochs
    assert (run / "summary.json").exists() == (epochs == 1)
