"""last.pt holds the best weights once: a flag when they are its own weights, a copy otherwise,
and a resume from either kind restores them exactly (same early stop, same test metrics)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dlseminar.config import resolve
from dlseminar.run import train

ROOT = Path(__file__).resolve().parents[2]
# moons_early_stopping: val/loss is best at epoch 6 and early stopping (patience 20) ends the run at epoch 26
SETS = ["logging.plots=false", "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0"]


def _rows(d: Path):
    with open(d / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    cfg = resolve(ROOT / "configs/moons_early_stopping.yaml", sets=SETS + [f"out={out}"])
    run_dir, summary = train(cfg, overwrite=True)
    assert summary.best_epoch == 6 and summary.epochs_run == 26  # the lesson's numbers
    return run_dir, summary


@pytest.mark.parametrize("cut, best_is_current", [(6, True), (20, False)])
def test_last_pt_stores_best_once_and_resume_restores_it(full, tmp_path, cut, best_is_current):
    full_dir, full_summary = full
    cfg = resolve(ROOT / "configs/moons_early_stopping.yaml", sets=SETS + [f"out={tmp_path / 'part'}", f"train.epochs={cut}"])
    part_dir, _ = train(cfg)
    last = torch.load(part_dir / "last.pt", weights_only=True)
    es = last["early_stopping"]
    assert es["best_epoch"] == 6 and es["best_is_current"] is best_is_current
    if best_is_current:
        assert es["best_state"] is None  # no second copy of the model
    else:
        best = torch.load(part_dir / "best.pt", weights_only=True)
        assert all(torch.equal(es["best_state"][k], best["model"][k]) for k in best["model"])
        assert not all(torch.equal(last["model"][k], best["model"][k]) for k in best["model"])

    _, summary = train(None, resume=str(part_dir / "last.pt"), sets=["train.epochs=600"])
    assert summary.best_epoch == 6 and summary.epochs_run == 26
    assert summary.test == full_summary.test  # evaluated on the restored best weights
    assert _rows(part_dir) == _rows(full_dir)
    assert json.loads((part_dir / "summary.json").read_text())["restored_best"] is True


def test_write_interval_keeps_checkpoint_writes_under_their_share_of_the_run():
    from dlseminar.engine.trainer import Trainer

    t = Trainer.__new__(Trainer)  # only the spacing rule
    t.cfg = {"checkpoint.min_interval_s": 2.0, "checkpoint.max_overhead": 0.02}
    t.model = torch.nn.Linear(1000, 1000)  # 4 MB of weights
    t.opt = torch.optim.Adam(t.model.parameters())
    t.model(torch.ones(1, 1000)).sum().backward()
    t.opt.step()  # + 8 MB of Adam moments
    t._write_seconds, t._estimate = 0.0, None  # before the first write: estimated from the bytes at 0.5 GB/s
    assert t.state_bytes() == 3 * 4 * (1000 * 1000 + 1000) + 2 * 4  # + a step counter per parameter
    assert t.write_interval() == 2.0  # 12 MB -> 0.024 s -> 1.2 s: the minimum rules
    t.model = torch.nn.Linear(6000, 6000)  # 144 MB of weights, no optimizer state yet
    t.opt = torch.optim.SGD(t.model.parameters())
    assert t.write_interval() == 2.0  # the first estimate is kept: sizes do not change during a run
    t._estimate = None
    assert t.write_interval() == pytest.approx(6001 * 6000 * 4 / 0.5e9 / 0.02)
    t._write_seconds = 0.01
    assert t.write_interval() == 2.0  # a small file: the minimum interval rules
    t._write_seconds = 0.5  # a ResNet's last.pt with Adam moments
    assert t.write_interval() == pytest.approx(25.0)  # 0.5 s of writing per 25 s is 2 %
    t.cfg = {"checkpoint.min_interval_s": 0.0, "checkpoint.max_overhead": 0.0}
    assert t.write_interval() == 0.0  # both off: every epoch end
