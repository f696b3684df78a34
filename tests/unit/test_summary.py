"""The typed run summary (dlseminar/summary.py): summary.json read and written again is the same file,
older files read with defaults, unknown keys survive, and the readers take the monitor's direction from it."""
from __future__ import annotations

import json
import math

import pytest

from dlseminar.summary import CORE, RunSummary

TINY = ["data.name=xor", "data.n_samples=200", "train.epochs=3", "model.name=perceptron", "loss.name=bce"]

# a summary.json as early runs wrote it: no mode, processes, test_details, test_checkpoint or optional parts
OLD = {"name": "old", "task": "classification", "model": "mlp", "dataset": "moons", "loss": "ce", "optimizer": "adam",
       "device": "cpu", "params": 130, "epochs_run": 4, "best_epoch": 3, "patience": 10, "stopped_early": False,
       "stop_reason": "reached train.epochs (4)", "monitor": "val/loss", "best": {"val/loss": 0.25, "val/acc": 0.9},
       "test": {"test/loss": 0.3, "test/acc": 0.875}, "restored_best": True, "seconds": 1.5}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 3-epoch perceptron run with every optional part: training health, its weights, plots and the GIF."""
    from dlseminar import run
    from dlseminar.config import resolve

    d = tmp_path_factory.mktemp("summary") / "run"
    run_dir, summary = run.train(resolve(sets=[*TINY, "train.health=true", "logging.plots=true",
                                               "logging.boundary_gif=true", f"out={d}"]))
    return run_dir, summary


def test_a_real_summary_round_trips_byte_for_byte(finished):
    run_dir, returned = finished
    text = (run_dir / "summary.json").read_text()
    s = RunSummary.from_json(text)
    assert s.to_json() == text
    assert returned.to_json() == text  # what run.train returns is what it wrote
    assert s.extra == {}
    # the optional parts are declared fields, after the keys every run writes
    assert list(json.loads(text)) == [*CORE, "health", "weights", "plots", "diagnosis"]
    assert s.health["layers"] and set(s.weights) == {"w0", "w"} and "plots/decision_boundary.gif" in s.plots
    assert s.monitor == "val/acc" and s.mode == "max" and s.epochs_run == 3 and s.processes == 1


def test_the_strict_reader_returns_the_typed_summary(finished):
    from dlseminar import runfiles

    run_dir, returned = finished
    s = runfiles.read_summary(run_dir)
    assert isinstance(s, RunSummary) and s.test == returned.test and s.best_epoch == returned.best_epoch


def test_an_old_summary_without_optional_keys_reads_and_writes_back_unchanged():
    text = json.dumps(OLD, indent=2) + "\n"
    s = RunSummary.from_json(text)
    assert s.mode is None and s.processes is None and s.test_details is None and s.test_checkpoint is None
    assert s.health is None and s.weights is None and s.plots is None and s.extra == {}
    assert s.to_json() == text  # no key it lacked is added
    assert "mode" not in s.to_dict() and s.plots is None and s.monitor == "val/loss"


@pytest.mark.parametrize("monitor, mode, configured, expected", [
    ("val/acc", "min", None, "min"),      # the recorded mode wins over any name
    ("val/loss", None, "max", "max"),     # an old summary: the run's early_stop.mode
    ("val/loss", None, None, "min"),      # an old summary, no config: the name rule of its time
    ("val/rmse", None, "auto", "min"),
    ("val/acc", None, None, "max"),
])
def test_direction(monitor, mode, configured, expected):
    assert RunSummary(monitor=monitor, mode=mode).direction(configured) == expected


def test_unknown_keys_are_kept_in_their_place():
    d = dict(OLD)
    items = list(d.items())
    d = dict([*items[:5], ("lab_note", {"who": "ta", "n": [1, 2]}), *items[5:], ("zz", None)])
    text = json.dumps(d, indent=2) + "\n"
    s = RunSummary.from_json(text)
    assert s.extra == {"lab_note": {"who": "ta", "n": [1, 2]}, "zz": None}
    assert s.to_json() == text and s.extra["lab_note"]["who"] == "ta"


def test_parts_added_by_attribute_keep_the_order_a_dict_would():
    """Observers, models and run.py set the optional parts (health, weights, plots) as attributes: the file
    lists them in the order they were added, as the dict the summary replaces did."""
    base = {"name": "x", "monitor": "val/acc", "mode": "max", "best": {"val/acc": 1.0}}
    s, d = RunSummary(**base), {k: getattr(RunSummary(**base), k) for k in CORE}
    s.plots = [*(s.plots or []), "plots/decision_boundary.gif"]
    s.health = {"layers": []}
    s.weights = {"w0": 0.5, "w": [1.0]}
    s.extra["custom"] = math.pi
    d.setdefault("plots", []).append("plots/decision_boundary.gif")
    d["health"] = {"layers": []}
    d.update({"weights": {"w0": 0.5, "w": [1.0]}})
    d["custom"] = math.pi
    s.test_details = {"columns": [], "rows": []}
    d["test_details"] = {"columns": [], "rows": []}
    assert list(s.to_dict()) == [*CORE, "plots", "health", "weights", "custom"]
    assert s.to_json() == json.dumps(d, indent=2) + "\n"
    assert s.plots == ["plots/decision_boundary.gif"] and s.extra == {"custom": math.pi}
    assert RunSummary.from_json(s.to_json()).to_json() == s.to_json()


def test_compare_reads_the_direction_from_an_old_summary(tmp_path):
    """A run whose summary.json predates `mode`: compare ranks it by its configured direction."""
    from dlseminar import compare

    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({**OLD, "monitor": "val/acc"}))
    (run_dir / "config.yaml").write_text("early_stop:\n  mode: min\n")
    row = compare.run_row(run_dir)
    assert row["mode"] == "min" and row["best"] == 0.9 and row["test"] == 0.875
    (run_dir / "config.yaml").unlink()
    assert compare.run_row(run_dir)["mode"] == "max"


def test_an_old_summary_takes_the_direction_its_task_declares():
    """Without a recorded or configured mode, the Task named in the summary says which way its metric improves:
    a lower-is-better metric that the old name rule would read as higher-is-better goes the right way."""
    from dlseminar.registry import TASKS
    from dlseminar.tasks import Task

    class ErrorRate(Task):
        kind = "error_rate_test"
        monitor, mode = "val/error_rate", "min"
        metric_modes = {"loss": "min", "error_rate": "min"}

    TASKS.register("error_rate_test")(ErrorRate)
    try:
        assert RunSummary(task="error_rate_test", monitor="val/error_rate").direction() == "min"
        assert RunSummary(task="error_rate_test", monitor="val/error_rate").direction("max") == "max"  # configured
        assert RunSummary(task="regression", monitor="val/r2").direction() == "max"
        assert RunSummary(task="segmentation", monitor="val/miou").direction() == "max"
        # no task known here (or none at all, or a hand-edited one): the name rule, as a last resort
        assert RunSummary(task="nowhere", monitor="val/error_rate").direction() == "max"
        assert RunSummary(task=["x"], monitor="val/loss").direction() == "min"
    finally:
        TASKS.unregister("error_rate_test")
