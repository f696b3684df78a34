"""logging.steps: RUN/steps.csv holds the training loss of every optimizer step, and a resume from any
checkpoint continues it exactly (no step twice, none missing, the same numbers as a run never stopped)."""
from __future__ import annotations

import csv
import shutil

import pytest

from conftest import metrics_rows

ARGS = ["--patience", "0", "--batch-size", "256", "--set", "logging.steps=true", "--set", "logging.plots=false",
        "--set", "checkpoint.min_interval_s=0"]


def _steps(run_dir) -> list[dict]:
    with open(run_dir / "steps.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_steps_csv_has_a_row_per_optimizer_step(dlsem, tmp_path):
    from dlseminar.assemble import build
    from dlseminar.config import resolve

    assert dlsem("train", "--epochs", "3", "--out", "run", *ARGS).rc == 0
    rows = _steps(tmp_path / "run")
    n_train = len(build(resolve(None)).data.splits["train"][1])
    per = -(-n_train // 256)
    assert [int(r["step"]) for r in rows] == list(range(1, 3 * per + 1))
    assert [int(r["epoch"]) for r in rows] == [e for e in (1, 2, 3) for _ in range(per)]
    # each step's mean loss, weighted by its batch, averages to the epoch's train/loss of metrics.csv
    sizes = [256] * (per - 1) + [n_train - 256 * (per - 1)]
    for e, m in enumerate(metrics_rows(tmp_path / "run")):
        losses = [float(r["train/loss"]) for r in rows[e * per:(e + 1) * per]]
        assert sum(v * n for v, n in zip(losses, sizes)) / n_train == pytest.approx(float(m["train/loss"]), rel=1e-9)

    assert dlsem("train", "--epochs", "1", "--out", "off", "--set", "logging.plots=false").rc == 0  # off by default
    assert not (tmp_path / "off" / "steps.csv").exists()


def test_a_steps_run_draws_steps_png_and_can_be_overwritten(dlsem, tmp_path):
    from conftest import read_summary

    assert dlsem("train", "--epochs", "2", "--out", "run", "--batch-size", "256", "--set", "logging.steps=true").rc == 0
    assert "plots/steps.png" in read_summary(tmp_path / "run")["plots"]
    assert (tmp_path / "run/plots/steps.png").stat().st_size > 1000
    r = dlsem("train", "--epochs", "1", "--out", "run", "--overwrite", "--set", "logging.plots=false")
    assert r.rc == 0, r  # steps.csv is a run's own file: --overwrite clears it
    assert not (tmp_path / "run/steps.csv").exists()


def test_steps_csv_continues_exactly_after_a_resume(dlsem, tmp_path):
    assert dlsem("train", "--epochs", "5", "--out", "whole", *ARGS).rc == 0
    assert dlsem("train", "--epochs", "2", "--out", "run", *ARGS).rc == 0
    shutil.copy(tmp_path / "run/last.pt", tmp_path / "epoch2.pt")
    # stands for a process killed after epoch 4 whose last good checkpoint is epoch 2's: its steps.csv
    # runs ahead of that checkpoint, and ends in a row cut by the kill
    assert dlsem("train", "--resume", "run/last.pt", "--epochs", "4").rc == 0
    with open(tmp_path / "run/steps.csv", "a") as f:
        f.write("21,5,0.12")
    shutil.copy(tmp_path / "epoch2.pt", tmp_path / "run/last.pt")
    assert dlsem("train", "--resume", "run/last.pt", "--epochs", "5").rc == 0
    assert (tmp_path / "run/steps.csv").read_bytes() == (tmp_path / "whole/steps.csv").read_bytes()
    assert len(_steps(tmp_path / "run")) == 5 * 5


def test_batch_modes_recipe_shows_sgds_noise_per_step(dlsem, tmp_path):
    """The recipe logs every step; single-sample SGD's loss jumps from step to step far more than a
    mini-batch's (what the per-epoch curves average away)."""
    import statistics

    from conftest import CONFIGS
    from dlseminar.config import resolve

    recipe = CONFIGS / "digits_batch_modes.yaml"
    assert resolve(recipe)["logging.steps"] is True
    jumps = {}
    for batch in ("1", "32"):
        r = dlsem("train", recipe, "--epochs", "1", "--batch-size", batch, "--out", f"b{batch}", "--set", "logging.plots=false")
        assert r.rc == 0, r
        losses = [float(row["train/loss"]) for row in _steps(tmp_path / f"b{batch}")]
        late = losses[len(losses) // 2:]  # past the first fall
        jumps[batch] = statistics.median(abs(b - a) / max(a, 1e-12) for a, b in zip(late, late[1:]))
    assert jumps["1"] > 5 * jumps["32"], jumps
