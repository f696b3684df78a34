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


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 2x2 plane sweep run once, in process: (working dir, its sweep dir, the Result)."""
    import contextlib
    import io

    mp = pytest.MonkeyPatch()
    cwd = tmp_path_factory.mktemp("sweep")
    out, err = io.StringIO(), io.StringIO()  # capsys is per test: capture by hand
    from dlseminar.cli import main

    mp.chdir(cwd)
    mp.setattr(sys, "argv", ["dlsem", "sweep", PLANE, *GRID])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code
    mp.undo()
    r = Result(type("P", (), {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()})())
    return cwd, cwd / "runs" / "plane_regression-sweep", r


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
    keep = ("rank", "run", "status", "best", "best_epoch", "epochs_run", "test/loss")
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
