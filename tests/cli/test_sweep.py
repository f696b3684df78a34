"""dlsem sweep and dlsem compare: the grid, the ranking, failures, restarts, --jobs.

Most cases run dlseminar.cli.main() in this process (--jobs 1 trains the members in-process too);
one sweep runs with --jobs 2 (members in child processes) and must rank and score exactly like
the in-process one.
"""
from __future__ import annotations

import csv
import json
import shutil
import sys

import pytest

from conftest import CONFIGS, Result, metrics_rows, read_summary

PLANE = str(CONFIGS / "plane_regression.yaml")
# lr 5 makes plane regression diverge in its second epoch (the loss overflows to inf)
GRID = ["--grid", "optim.lr=0.05,5", "--grid", "optim.name=sgd,momentum", "--set", "train.epochs=4",
        "--set", "logging.plots=false"]
NAMES = ["optim.lr=0.05,optim.name=sgd", "optim.lr=0.05,optim.name=momentum",
         "optim.lr=5,optim.name=sgd", "optim.lr=5,optim.name=momentum"]


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _main(cwd, *args) -> Result:
    """dlseminar.cli.main() in this process, in `cwd` (for the module-scoped fixtures: capsys is per test)."""
    import contextlib
    import io

    mp = pytest.MonkeyPatch()
    out, err = io.StringIO(), io.StringIO()
    from dlseminar.cli import main

    mp.chdir(cwd)
    mp.setattr(sys, "argv", ["dlsem", *map(str, args)])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code
    mp.undo()
    return Result(type("P", (), {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()})())


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 2x2 plane sweep run once, in process: (working dir, its sweep dir, the Result)."""
    cwd = tmp_path_factory.mktemp("sweep")
    r = _main(cwd, "sweep", PLANE, *GRID)
    return cwd, cwd / "runs" / "plane_regression-sweep", r


# A classifier monitored by its loss, with and without L1: Adam's steps of ~lr leave the weights L1 pulls to
# zero within 1e-3 of it (about a third of them here, against under 1 % without). The final weights are the
# tested ones (no restore), so the health observer's last near-zero share is the same number, counted on
# the model's parameters instead of the checkpoint's state dict.
L1 = ["--grid", "loss.l1=0,0.01", *[a for s in ("data.name=moons", "data.n_samples=200", "model.name=mlp",
      "model.hidden=[32,32]", "train.batch_size=8", "optim.lr=0.003", "train.epochs=4", "early_stop.monitor=val/loss",
      "early_stop.restore_best=false", "train.health=true", "logging.plots=false") for a in ("--set", s)]]


@pytest.fixture(scope="module")
def l1_swept(tmp_path_factory):
    """The moons L1 sweep run once, in process: (its sweep dir, the Result)."""
    cwd = tmp_path_factory.mktemp("l1")
    return cwd / "l1", _main(cwd, "sweep", *L1, "--out", "l1")


def test_sweep_runs_the_grid_and_ranks_it(swept):
    cwd, root, r = swept
    assert r.rc == 0, r
    rows = _csv(root / "sweep.csv")
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4"]
    assert sorted(row["run"] for row in rows) == sorted(NAMES)
    finished = [row for row in rows if row["status"] == "finished"]
    diverged = [row for row in rows if row["status"] == "diverged"]
    assert {row["optim.lr"] for row in finished} == {"0.05"} and {row["optim.lr"] for row in diverged} == {"5"}
    assert rows[:2] == finished  # the finished members first, by val/loss ascending (the monitor's direction)
    assert float(finished[0]["best"]) <= float(finished[1]["best"]) and finished[0]["mode"] == "min"
    assert all("not finite" in row["stop_reason"] for row in diverged)
    for row in finished:
        s = read_summary(root / row["run"])
        assert float(row["best"]) == s["best"]["val/loss"] and int(row["epochs_run"]) == 4
    assert (root / "plots" / "compare.png").stat().st_size > 10_000
    assert "diverged" in r.out and "sweep.csv" in r.out
    record = json.loads((root / "sweep.json").read_text())
    assert [m["name"] for m in record["members"]] == NAMES and all(m["action"] == "ran" for m in record["members"])


def test_parallel_sweep_scores_like_the_sequential_one(swept, dlsem, tmp_path):
    _, root, _ = swept
    r = dlsem("sweep", PLANE, *GRID, "--jobs", "2", "--out", "par")
    assert r.rc == 0, r
    seq, par = _csv(root / "sweep.csv"), _csv(tmp_path / "par" / "sweep.csv")
    keep = ("rank", "run", "status", "best", "kept_epoch", "epochs_run", "test/loss")
    assert [{k: row[k] for k in keep} for row in par] == [{k: row[k] for k in keep} for row in seq]
    assert "train/loss" in (tmp_path / "par" / NAMES[0] / "train.log").read_text()  # the child's own output


def test_restart_skips_finished_members_and_resumes_the_others(swept, dlsem, tmp_path):
    from dlseminar import run
    from dlseminar.config import resolve

    cwd, root, _ = swept
    copy = tmp_path / "runs" / root.name
    shutil.copytree(root, copy)
    resumed, rerun, kept = (copy / n for n in NAMES[:3])
    reference = metrics_rows(resumed)
    # an interrupted member: its own config stopped after 2 of the sweep's 4 epochs, no summary yet
    cfg = resolve(PLANE, ["optim.lr=0.05", "optim.name=sgd", "train.epochs=2", "logging.plots=false", f"out={resumed}"])
    run.train(cfg, overwrite=True)
    (resumed / "summary.json").unlink()
    shutil.rmtree(rerun)  # a member never started
    kept_summary = (kept / "summary.json").read_text()
    r = dlsem("sweep", PLANE, *GRID)  # the same command: continues runs/...-sweep
    assert r.rc == 0, r
    assert not (tmp_path / "runs" / f"{root.name}-2").exists()
    actions = {m["name"]: m["action"] for m in json.loads((copy / "sweep.json").read_text())["members"]}
    assert actions == {NAMES[0]: "resumed", NAMES[1]: "ran", NAMES[2]: "skipped", NAMES[3]: "skipped"}
    assert metrics_rows(resumed) == reference  # resumed to the sweep's 4 epochs, exactly as if never cut
    assert (kept / "summary.json").read_text() == kept_summary
    assert r.out.count("skipped") == 2
    assert [row["run"] for row in _csv(copy / "sweep.csv")] == [row["run"] for row in _csv(root / "sweep.csv")]


def test_failed_member_is_reported_and_the_others_finish(dlsem, tmp_path):
    # batch norm cannot train on batches of one sample: that member exits with a config error
    r = dlsem("sweep", CONFIGS / "xor_mlp.yaml", "--grid", "train.batch_size=1,32", "--set", "model.batch_norm=true",
            "--set", "train.epochs=2", "--set", "logging.plots=false", "--out", "bn")
    assert r.rc == 1, r
    rows = {row["train.batch_size"]: row for row in _csv(tmp_path / "bn" / "sweep.csv")}
    assert rows["32"]["status"] == "finished" and rows["32"]["rank"] == "1"
    assert rows["1"]["status"] == "failed" and "batch norm" in rows["1"]["error"] and rows["1"]["rank"] == "2"
    assert "failed" in r.out
    assert "error: batch norm" in (tmp_path / "bn" / "train.batch_size=1" / "train.log").read_text()


def test_compare_ranks_existing_runs_in_the_monitors_direction(swept, dlsem, tmp_path):
    from dlseminar import run
    from dlseminar.config import resolve

    for lr in ("0.0001", "0.05"):  # the default MLP on digits, one epoch: the larger lr reaches the higher val/acc
        run.train(resolve(None, [f"optim.lr={lr}", "train.epochs=1", "logging.plots=false", f"out={tmp_path / ('lr' + lr)}"]))
    r = dlsem("compare", "lr0.0001", "lr0.05", "--out", "cmp")
    assert r.rc == 0, r
    rows = _csv(tmp_path / "cmp" / "compare.csv")
    assert [row["run"] for row in rows] == ["lr0.05", "lr0.0001"] and rows[0]["mode"] == "max"
    assert float(rows[0]["best"]) > float(rows[1]["best"]) and rows[0]["monitor"] == "val/acc"
    assert rows[0]["optim.lr"] == "0.05"  # the differing config keys become columns
    assert "val/acc" not in rows[0] and "near_zero_weights" not in rows[0]  # the monitor is the main metric; no penalty
    assert (tmp_path / "cmp" / "plots" / "compare.png").exists()
    _, root, _ = swept
    r = dlsem("compare", root, "--out", "fromsweep")
    assert r.rc == 0, r
    assert [row["run"] for row in _csv(tmp_path / "fromsweep" / "compare.csv")] == \
        [row["run"] for row in _csv(root / "sweep.csv")]
    assert dlsem("compare", tmp_path / "cmp").rc == 2  # not a run directory


@pytest.mark.parametrize("grid,words", [
    ("optim.lrr=0.1,0.01", "did you mean 'optim.lr'"),
    ("optim.lr", "--grid expects key=value1,value2"),
    ("optim.lr=0.1,,0.01", "empty value"),
    ("optim.lr=0.1,fast", "optim.lr must be a number"),
    ("optim.name=sgd,adamm", "did you mean 'adam'"),
    ("model.hidden=[8,8", "unbalanced brackets"),
    ("out=a,b", "cannot vary out"),
])
def test_bad_grid_is_one_error_line(dlsem, tmp_path, grid, words):
    r = dlsem("sweep", PLANE, "--grid", grid)
    assert r.rc == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r
    assert not (tmp_path / "runs").exists()


def test_more_epochs_into_the_same_out_continue_finished_members(dlsem, tmp_path):
    """Run again into the same --out with a larger train.epochs: members that ran all their epochs go on from
    their last.pt (each equal to one longer run); fewer epochs would mix run lengths in one table: refused."""
    grid = ["--grid", "optim.lr=0.05,0.01", "--set", "logging.plots=false", "--set", "checkpoint.min_interval_s=0"]
    assert dlsem("sweep", PLANE, *grid, "--set", "train.epochs=2", "--out", "sw").rc == 0
    r = dlsem("sweep", PLANE, *grid, "--set", "train.epochs=4", "--out", "sw")
    assert r.rc == 0, r
    assert "skipped" not in r.out
    assert dlsem("sweep", PLANE, *grid, "--set", "train.epochs=4", "--out", "long").rc == 0
    for name in ("optim.lr=0.05", "optim.lr=0.01"):
        rows = metrics_rows(tmp_path / "sw" / name)
        assert len(rows) == 4 and rows == metrics_rows(tmp_path / "long" / name)
        assert read_summary(tmp_path / "sw" / name)["test"] == read_summary(tmp_path / "long" / name)["test"]
    actions = {m["name"]: m["action"] for m in json.loads((tmp_path / "sw" / "sweep.json").read_text())["members"]}
    assert set(actions.values()) == {"resumed"}
    assert [int(row["epochs_run"]) for row in _csv(tmp_path / "sw" / "sweep.csv")] == [4, 4]

    before = {n: metrics_rows(tmp_path / "sw" / n) for n in ("optim.lr=0.05", "optim.lr=0.01")}
    fewer = dlsem("sweep", PLANE, *grid, "--set", "train.epochs=3", "--out", "sw")
    assert fewer.rc == 2 and fewer.err.strip().startswith("error: ") and len(fewer.err.strip().splitlines()) == 1
    assert "already ran 4 epochs" in fewer.err
    assert {n: metrics_rows(tmp_path / "sw" / n) for n in before} == before


def test_loss_monitored_l1_sweep_shows_accuracy_near_zero_weights_and_diagnoses(l1_swept):
    root, r = l1_swept
    assert r.rc == 0, r
    rows = {row["loss.l1"]: row for row in _csv(root / "sweep.csv")}
    assert set(rows) == {"0", "0.01"}
    for row in rows.values():
        s = read_summary(root / row["run"])
        assert row["monitor"] == "val/loss" and float(row["best"]) == s["best"]["val/loss"]
        # the task's main metric beside the monitor: classification's val/acc at the best epoch, and test/acc
        assert float(row["val/acc"]) == s["best"]["val/acc"] and float(row["test/acc"]) == s["test"]["test/acc"]
        assert s["test_checkpoint"] == "last.pt"
        assert float(row["near_zero_weights"]) == pytest.approx(s["health"]["near_zero_all"][-1], abs=1e-12)
        assert row["diagnosis"] == s["diagnosis"]["kind"] != ""
        # the printed table: the share in percent on the member's row, its diagnosis line under the table
        line = next(ln for ln in r.out.splitlines() if ln.startswith("│") and ln.split("│")[3].strip() == row["loss.l1"])
        assert f"{float(row['near_zero_weights']):.1%}" in line and f"{float(row['val/acc']):.4f}" in line
        assert f"#{row['rank']} {row['run']}: {s['diagnosis']['line']}" in r.out.splitlines()
    assert float(rows["0.01"]["near_zero_weights"]) > float(rows["0"]["near_zero_weights"]) + 0.1  # L1's sparsity
    header = next(ln for ln in r.out.splitlines() if "val/loss ↓" in ln)
    assert all(h in header for h in ("test/loss", "val/acc", "test/acc", "|w|<1e-3", "kept epoch")), r.out


def test_compare_shows_the_main_metric_and_the_diagnoses_there_are(l1_swept, dlsem, tmp_path):
    """Loose runs that differ in loss.l1: the same columns as the sweep's; a summary written before runs were
    diagnosed (diagnosis null) shows no diagnosis, and the other runs' still do."""
    root, _ = l1_swept
    shutil.copytree(root / "loss.l1=0", tmp_path / "plain")
    shutil.copytree(root / "loss.l1=0.01", tmp_path / "old")
    s = read_summary(tmp_path / "old")
    (tmp_path / "old" / "summary.json").write_text(json.dumps({**s, "diagnosis": None}))
    r = dlsem("compare", "plain", "old", "--out", "cmp")
    assert r.rc == 0, r
    rows = {row["run"]: row for row in _csv(tmp_path / "cmp" / "compare.csv")}
    swept = {row["run"]: row for row in _csv(root / "sweep.csv")}
    for name, member in (("plain", "loss.l1=0"), ("old", "loss.l1=0.01")):
        for key in ("loss.l1", "best", "val/acc", "test/acc", "near_zero_weights"):  # loss.l1: 0.0 as resolved, 0 as typed
            assert float(rows[name][key]) == float(swept[member][key]), (name, key)
    assert rows["plain"]["diagnosis"] == swept["loss.l1=0"]["diagnosis"] and rows["old"]["diagnosis"] == ""
    notes = [ln for ln in r.out.splitlines() if ln.startswith("#")]
    assert notes == [f"#{rows['plain']['rank']} plain: {read_summary(tmp_path / 'plain')['diagnosis']['line']}"], r.out


def test_members_that_keep_their_last_weights_are_ranked_on_their_last_epoch(l1_swept):
    """restore_best=false: each member hands over (and tests) its last epoch's weights, so its row's
    monitor value and epoch are the last epoch's, not the best epoch's it did not keep."""
    root, r = l1_swept
    assert r.rc == 0, r
    rows = _csv(root / "sweep.csv")
    for row in rows:
        last = metrics_rows(root / row["run"])[-1]
        assert row["kept_epoch"] == row["epochs_run"] == last["epoch"]
        assert float(row["best"]) == pytest.approx(float(last["val/loss"]), rel=1e-12)
        assert float(row["val/acc"]) == pytest.approx(float(last["val/acc"]), rel=1e-12)
    values = [float(row["best"]) for row in rows]
    assert values == sorted(values)  # ranked by those values, lower loss first
