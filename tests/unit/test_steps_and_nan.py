"""Step-level checkpoints and non-finite losses, in process (the subprocess SIGKILL test is in tests/cli)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dlseminar.config import resolve
from dlseminar.engine import checkpoint as ckpt
from dlseminar.run import train
from dlseminar.tasks.base import Task

# moons MLP with dropout and shuffling: every step draws random numbers
BASE = ["data.name=moons", "data.n_samples=200", "model.name=mlp", "model.hidden=[16]", "model.dropout=0.2",
        "train.batch_size=16", "train.epochs=3", "early_stop.patience=0", "logging.plots=false",
        "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0"]


def _rows(d: Path):
    import csv

    with open(d / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def test_every_n_steps_writes_mid_epoch_and_a_resume_from_any_of_them_is_exact(tmp_path, monkeypatch):
    full_dir, _ = train(resolve(sets=BASE + [f"out={tmp_path / 'full'}"]))
    full = torch.load(full_dir / "last.pt", weights_only=True)

    saved = []  # (epoch, batch_in_epoch, copy of last.pt)
    orig = ckpt.save

    def keep(obj, path):
        orig(obj, path)
        if Path(path).name == "last.pt":
            dst = tmp_path / f"copy{len(saved)}.pt"
            shutil.copy(path, dst)
            saved.append((obj["epoch"], obj["batch_in_epoch"], obj["step"], dst))

    monkeypatch.setattr(ckpt, "save", keep)
    train(resolve(sets=BASE + ["checkpoint.every_n_steps=4", f"out={tmp_path / 'steps'}"]))
    monkeypatch.setattr(ckpt, "save", orig)
    mid = [s for s in saved if s[1]]
    assert [s[2] for s in mid] and all(step % 4 == 0 for _, _, step, _ in mid)
    assert {e for e, _, _, _ in mid} == {0, 1, 2}  # mid-epoch writes in every epoch

    for epoch, batch, step, path in (mid[0], mid[len(mid) // 2], mid[-1]):
        d = tmp_path / f"resume-{step}"
        d.mkdir()
        shutil.copy(path, d / "last.pt")
        train(None, resume=str(d / "last.pt"))
        got = torch.load(d / "last.pt", weights_only=True)
        assert all(torch.equal(full["model"][k], got["model"][k]) for k in full["model"]), (epoch, batch)
        assert _rows(d) == _rows(full_dir)


def _poison(monkeypatch, bad_calls):
    """Make the Task's training loss NaN on the given (1-based) calls."""
    orig = Task.training_step
    calls = {"n": 0}

    def step(self, model, batch):
        loss, n = orig(self, model, batch)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] in bad_calls else loss), n

    monkeypatch.setattr(Task, "training_step", step)


def test_on_nan_stop_ends_the_run_within_the_step_and_keeps_finite_weights(tmp_path, monkeypatch):
    _poison(monkeypatch, {13})  # 120 train samples / 16 = 8 steps per epoch: step 5 of epoch 2
    run_dir, summary = train(resolve(sets=BASE + [f"out={tmp_path / 'r'}"]))
    assert summary.stop_reason.startswith("the training loss is not finite at epoch 2, step 5")
    assert summary.epochs_run == 2 and summary.stopped_early
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["step"] == 12  # the poisoned step made no update
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert _rows(run_dir)[-1]["train/loss"] == "nan"


def test_on_nan_skip_drops_the_bad_steps_and_counts_them(tmp_path, monkeypatch):
    _poison(monkeypatch, {4, 20})  # epoch 1 step 4, epoch 3 step 4
    run_dir, summary = train(resolve(sets=BASE + ["train.on_nan=skip", f"out={tmp_path / 'r'}"]))
    assert summary.epochs_run == 3 and not summary.stopped_early
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["step"] == 22 and last["nan_skips"] == 2
    assert [r["train/skipped_steps"] for r in _rows(run_dir)] == ["1", "1", "2"]
    assert all(r["train/loss"] != "nan" for r in _rows(run_dir))


def test_on_nan_skip_catches_an_overflowing_gradient(tmp_path, monkeypatch):
    """A finite loss whose gradient overflows (a hook multiplies one backward by inf) is skipped too."""
    orig = Task.training_step
    calls = {"n": 0, "hook": None}

    def step(self, model, batch):
        loss, n = orig(self, model, batch)
        calls["n"] += 1
        if calls["hook"] is not None:
            calls["hook"].remove()
            calls["hook"] = None
        if calls["n"] == 5:
            calls["hook"] = next(model.parameters()).register_hook(lambda g: g * float("inf"))
        return loss, n

    monkeypatch.setattr(Task, "training_step", step)
    run_dir, summary = train(resolve(sets=BASE + ["train.on_nan=skip", "train.epochs=1", f"out={tmp_path / 'r'}"]))
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["nan_skips"] == 1 and last["step"] == 7
    assert all(torch.isfinite(t).all() for t in last["model"].values())


def test_deterministic_flag_is_applied_and_released():
    from dlseminar.assemble import build

    build(resolve(sets=["train.deterministic=true"]))
    assert torch.are_deterministic_algorithms_enabled()
    build(resolve())
    assert not torch.are_deterministic_algorithms_enabled()
