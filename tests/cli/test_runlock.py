"""One writer per run directory: real processes held mid-training (hold.py), others refused with the holder's pid.

Each case starts a real `dlsem` process, holds it at a training step while it owns its directory,
and runs the competing commands in parallel against it: a second train (with and without
--overwrite), a --resume, a second sweep. Then the holder finishes (or is SIGKILLed) and the
directory is whole and usable.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import metrics_rows, read_summary
from hold import hold_env, reached, release, wait_for

# moons, 120 training samples / 16 = 8 steps an epoch; a checkpoint at every epoch end
SETS = ["data.name=moons", "data.n_samples=200", "model.name=mlp", "model.hidden=[16]", "train.batch_size=16",
        "train.epochs=3", "early_stop.patience=0", "logging.plots=false", "checkpoint.min_interval_s=0",
        "checkpoint.max_overhead=0"]
STEPS_PER_EPOCH = 8


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "dlseminar", *map(str, args)]


def _sets(sets=SETS) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _popen(cwd, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen(_cmd(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or dict(os.environ, PYTHONUNBUFFERED="1"))


def _finish(p: subprocess.Popen, timeout: int = 240):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_second_train_or_a_resume_into_a_run_being_trained_is_refused_naming_the_holder(tmp_path):
    env = hold_env(tmp_path, after=STEPS_PER_EPOCH)  # held at the first step of epoch 2: last.pt of epoch 1 exists
    holder = _popen(tmp_path, "train", "--out", "run", *_sets(), env=env)
    run = tmp_path / "run"
    wait_for(lambda: reached(tmp_path) or holder.poll() is not None, what="the first run to reach epoch 2")
    assert holder.poll() is None, holder.communicate()
    lock = (run / ".lock").read_text()
    assert lock.startswith(f"{holder.pid}\n") and "dlsem train --out run" in lock
    before = _files(run)

    others = [_popen(tmp_path, "train", "--out", "run", "--overwrite", *_sets()),
              _popen(tmp_path, "train", "--out", "run", *_sets()),
              _popen(tmp_path, "train", "--resume", "run/last.pt", "--epochs", "5"),
              _popen(tmp_path, "train", "--out", "./run/", "--overwrite", *_sets())]  # the same folder, spelled otherwise
    for p in others:
        rc, out, err = _finish(p)
        line = _error_line(err)
        assert rc == 2, err
        assert f"is in use by process {holder.pid} (dlsem train --out run" in line, line
        assert "wait for it" in line
    assert _files(run) == before, "a refused process changed the run directory"

    release(tmp_path)
    rc, out, err = _finish(holder)
    assert rc == 0 and "Traceback" not in err, err
    assert len(metrics_rows(run)) == 3 and read_summary(run)["epochs_run"] == 3
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "last.pt", "metrics.csv", "plots",
                                                    "summary.json"]  # the lock file left with its holder


def test_a_sigkilled_holder_leaves_no_lock_behind_and_the_run_resumes(tmp_path):
    env = hold_env(tmp_path, after=STEPS_PER_EPOCH)
    holder = _popen(tmp_path, "train", "--out", "run", *_sets(), env=env)
    run = tmp_path / "run"
    wait_for(lambda: reached(tmp_path) or holder.poll() is not None, what="the run to reach epoch 2")
    holder.kill()  # SIGKILL: nothing of ours runs; the kernel drops the flock
    holder.wait()
    assert (run / ".lock").exists()  # its file stays, naming a dead process, and locks nothing
    report = subprocess.run(_cmd("report", "run"), cwd=tmp_path, capture_output=True, text=True)
    assert report.returncode == 0 and ".lock" not in (run / "report.html").read_text(), report.stderr
    r = subprocess.run(_cmd("train", "--resume", "run/last.pt"), cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, r.stderr
    assert read_summary(run)["epochs_run"] == 3 and len(metrics_rows(run)) == 3
    assert not (run / ".lock").exists()


def test_two_runs_started_together_without_out_get_a_directory_each(tmp_path):
    env = hold_env(tmp_path, after=0)  # both wait at their first step, each in the directory it locked
    a = _popen(tmp_path, "train", *_sets(SETS + ["name=twin"]), env=env)
    b = _popen(tmp_path, "train", *_sets(SETS + ["name=twin"]), env=env)
    runs = tmp_path / "runs"
    wait_for(lambda: len(list(runs.glob("*/.lock"))) == 2 or a.poll() is not None or b.poll() is not None,
             what="both runs to lock a directory")
    holders = {d.parent.name: d.read_text().split("\n")[0] for d in runs.glob("*/.lock")}
    assert sorted(holders) == ["twin", "twin-2"] and sorted(holders.values()) == sorted([str(a.pid), str(b.pid)])
    release(tmp_path)
    for p in (a, b):
        rc, out, err = _finish(p)
        assert rc == 0, err
    assert read_summary(runs / "twin")["epochs_run"] == 3 and read_summary(runs / "twin-2")["epochs_run"] == 3


def test_a_second_sweep_into_a_running_sweep_and_a_train_into_its_member_are_refused(tmp_path):
    env = hold_env(tmp_path, after=STEPS_PER_EPOCH)
    grid = ["--grid", "optim.lr=0.1,0.05"]
    sweep = _popen(tmp_path, "sweep", *grid, "--jobs", "2", "--out", "sw", *_sets(), env=env)
    members = [tmp_path / "sw" / "optim.lr=0.1", tmp_path / "sw" / "optim.lr=0.05"]
    wait_for(lambda: all((m / "last.pt").exists() and (m / ".lock").exists() for m in members) or sweep.poll() is not None,
             what="both members to hold their directories")
    member_pid = (members[0] / ".lock").read_text().split("\n")[0]
    second = _popen(tmp_path, "sweep", *grid, "--jobs", "2", "--out", "sw", *_sets())
    into_member = _popen(tmp_path, "train", "--out", members[0], "--overwrite", *_sets())
    rc, out, err = _finish(second)
    assert rc == 2 and f"sweep directory 'sw' is in use by process {sweep.pid} (dlsem sweep" in _error_line(err), err
    rc, out, err = _finish(into_member)
    assert rc == 2 and f"is in use by process {member_pid} (dlsem train" in _error_line(err), err
    release(tmp_path)
    rc, out, err = _finish(sweep)
    assert rc == 0, out + err
    assert all(read_summary(m)["epochs_run"] == 3 for m in members)
    assert not list((tmp_path / "sw").rglob(".lock"))
