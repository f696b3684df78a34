"""Signals, full disks, closed or broken streams, narrow or odd terminals: no work lost, nothing half-written.

In process (the `dlsem` fixture, through the hostile harness): a real SIGINT or SIGTERM sent to
the process at a chosen moment (while a checkpoint, summary.json, report.html, compare.csv or
lr_find.csv is being written, while the plots are drawn, mid-training, mid-sweep, mid lr-find),
and ENOSPC raised by a write or an fsync (checkpoints, metrics.csv, config.yaml, summary.json,
plots, report). Each must end with its exit code (130, 143, or 2 with one `error:` line), every
file that existed unchanged unless the case names it, the old last.pt whole, and no temp file.

In real processes (started together, four at a time): stdout piped into a reader that leaves after
one line (`| head -1`), stdout and/or stderr closed (`>&-`, `2>&-`), an ASCII-only encoding with
non-ASCII run directories and CSV paths (also under LANG=C), COLUMNS=1/20/1000 into a pipe, and a
real SIGINT/SIGTERM while a run is held mid-epoch: the run goes to its end (or stops with last.pt
and the resume line), never a traceback or "Exception ignored ... BrokenPipeError", never a
UnicodeEncodeError, one line per epoch and per summary line whatever COLUMNS says.
"""
from __future__ import annotations

import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from _harness import error_lines, hostile, snapshot, temps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from hold import hold_env, reached, release, wait_for  # noqa: E402

# moons: 120 training samples / 16 = 8 steps an epoch; every epoch end writes last.pt
TINY = ["data.name=moons", "data.n_samples=200", "model.name=mlp", "model.hidden=[16]", "train.batch_size=16",
        "early_stop.patience=0", "logging.plots=false", "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0",
        "logging.every_epochs=1"]


def _sets(*extra) -> list[str]:
    return [a for s in (*TINY, *extra) for a in ("--set", s)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 1-epoch run (trained in process once); each case copies it."""
    from dlseminar.config import resolve
    from dlseminar.run import train

    d = tmp_path_factory.mktemp("finished") / "run"
    train(resolve(sets=[*TINY, "train.epochs=1", f"out={d}"]))
    return d


# --------------------------------------------------------------------------- in-process moments
def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def at_fsync(name: str, action):
    """Patch os.fsync: after the first fsync of a file whose name holds `name` (its temp file), do `action`."""
    def patch(mp):
        real = os.fsync
        done = []

        def fsync(fd):
            real(fd)
            if not done and name in Path(_fd_path(fd)).name:
                done.append(fd)
                action()
        mp.setattr(os, "fsync", fsync)
    return patch


def kill(sig):
    return lambda: os.kill(os.getpid(), sig)


def enospc():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def on_call(target: str, attr: str, action, n: int = 1):
    """Patch target.attr ("module" or "module:Class") so that its n-th call first does `action`."""
    def patch(mp):
        import importlib

        mod, _, cls = target.partition(":")
        owner = importlib.import_module(mod)
        owner = getattr(owner, cls) if cls else owner
        real = getattr(owner, attr)
        calls = {"n": 0}

        def wrapped(*a, **kw):
            calls["n"] += 1
            if calls["n"] == n:
                action()
            return real(*a, **kw)
        mp.setattr(owner, attr, wrapped)
    return patch


def half_torch_save(mp):
    """torch.save of a checkpoint writes half of its bytes, then the disk is full."""
    from dlseminar.engine import checkpoint as ckpt

    real = torch.save

    def save(obj, f, *a, **kw):
        import io

        buf = io.BytesIO()
        real(obj, buf, *a, **kw)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        enospc()
    mp.setattr(ckpt.torch, "save", save)


def full_metrics(mp):
    """Every write to metrics.csv meets a full disk."""
    from dlseminar.engine import callbacks

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            enospc()

        def __getattr__(self, name):
            return getattr(self.f, name)

    mp.setattr(callbacks, "open", lambda *a, **kw: Full(open(*a, **kw)), raising=False)


def half_png(mp):
    """A plot's savefig writes a broken half PNG, then the disk is full."""
    import matplotlib.figure

    def savefig(self, fname, *a, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n half")
        enospc()
    mp.setattr(matplotlib.figure.Figure, "savefig", savefig)


def prep_finished(finished, tmp):
    shutil.copytree(finished, tmp / "run")


def prep_two(finished, tmp):
    shutil.copytree(finished, tmp / "a")
    shutil.copytree(finished, tmp / "b")


RESUME3 = ("train", "--resume", "run/last.pt", "--epochs", "3")
NEW3 = ("train", *_sets("train.epochs=3"), "--out", "new")
NEW3_PLOTS = ("train", *_sets("train.epochs=3", "logging.plots=true", "logging.boundary_gif=false"), "--out", "new")

# id, prepare, args, patch, exit code, words of the error line, files that may change, what must (not) exist after
IN_PROCESS = [
    ("train-sigint-writing-last.pt", None, NEW3, at_fsync("last.pt", kill(signal.SIGINT)), 130, (), (),
     {"new/last.pt": True, "new/summary.json": False}),
    ("train-sigterm-writing-last.pt", None, NEW3, at_fsync("last.pt", kill(signal.SIGTERM)), 143, (), (),
     {"new/last.pt": True, "new/summary.json": False}),
    ("train-sigint-mid-epoch", None, NEW3, on_call("dlseminar.tasks.base:Task", "training_step", kill(signal.SIGINT), 12),
     130, (), (), {"new/last.pt": True}),
    ("train-sigterm-drawing-plots", None, NEW3_PLOTS, on_call("dlseminar.viz.curves", "curves", kill(signal.SIGTERM)), 143,
     (), (), {"new/last.pt": True, "new/plots/curves.png": False, "new/summary.json": False}),
    ("train-sigint-writing-summary", None, NEW3, at_fsync("summary.json", kill(signal.SIGINT)), 130, (), (),
     {"new/summary.json": False}),
    ("resume-enospc-checkpoint", prep_finished, RESUME3, half_torch_save, 2, ("no space left", "checkpoint"), (), {}),
    ("resume-enospc-metrics", prep_finished, RESUME3, full_metrics, 2, ("metrics.csv", "no space left"),
     ("run/last.pt", "run/best.pt"), {}),
    ("resume-enospc-config", prep_finished, RESUME3, at_fsync("config.yaml", enospc), 2, ("no space left",),
     ("run/last.pt", "run/best.pt", "run/metrics.csv"), {"run/summary.json": True}),
    ("train-enospc-first-checkpoint", None, NEW3, half_torch_save, 2, ("no space left", "checkpoint"), (),
     {"new/last.pt": False, "new/metrics.csv": False}),
    ("train-enospc-summary", None, NEW3, at_fsync("summary.json", enospc), 2, ("no space left",), (),
     {"new/summary.json": False, "new/last.pt": True}),
    ("train-enospc-plots", None, NEW3_PLOTS, half_png, 2, ("no space left",), (),
     {"new/plots/curves.png": False, "new/last.pt": True}),
    ("report-sigint-writing", prep_finished, ("report", "run"), at_fsync("report.html", kill(signal.SIGINT)), 130, (),
     (), {"run/report.html": False}),
    ("report-sigterm-writing", prep_finished, ("report", "run"), at_fsync("report.html", kill(signal.SIGTERM)), 143, (),
     (), {"run/report.html": False}),
    ("report-enospc", prep_finished, ("report", "run"), at_fsync("report.html", enospc), 2, ("no space left",), (),
     {"run/report.html": False}),
    ("compare-sigint-writing", prep_two, ("compare", "a", "b", "--out", "cmp"),
     at_fsync("compare.csv", kill(signal.SIGINT)), 130, (), (), {"cmp/compare.csv": False}),
    ("lr-find-sigterm-mid-test", None, ("lr-find", "--steps", "30", *_sets()),
     on_call("dlseminar.tasks.base:Task", "training_step", kill(signal.SIGTERM), 10), 143, (), (), {}),
    ("lr-find-sigint-writing", None, ("lr-find", "--steps", "30", "--out", "lrf", *_sets()),
     at_fsync("lr_find.csv", kill(signal.SIGINT)), 130, (), (), {"lrf/lr_find.csv": False}),
    ("lr-find-enospc-plot", None, ("lr-find", "--steps", "30", "--out", "lrf", *_sets()), half_png, 2,
     ("no space left",), (), {"lrf/lr_find.png": False}),
    ("sweep-sigint-mid-member", None, ("sweep", "--grid", "optim.lr=0.1,0.05", "--out", "sw", *_sets("train.epochs=3")),
     on_call("dlseminar.tasks.base:Task", "training_step", kill(signal.SIGINT), 12), 130, (), (),
     {"sw/sweep.json": True, "sw/optim.lr=0.1/last.pt": True, "sw/.lock": False}),
]


@pytest.mark.parametrize("case, prepare, args, patch, rc, words, may_change, after", IN_PROCESS,
                         ids=[c[0] for c in IN_PROCESS])
def test_in_process(case, prepare, args, patch, rc, words, may_change, after, dlsem, tmp_path, finished, monkeypatch):
    if prepare is not None:
        prepare(finished, tmp_path)
    old_last = (tmp_path / "run/last.pt").read_bytes() if (tmp_path / "run/last.pt").exists() else None
    with monkeypatch.context() as mp:
        patch(mp)
        r = hostile(dlsem, tmp_path, *args, rc=rc, words=words, may_change=may_change)
    if rc in (130, 143) and args[0] == "train":
        assert "resume with: dlsem train --resume" in r.err or "summary" in case or "plots" in case, r
    for rel, exists in after.items():
        assert (tmp_path / rel).exists() == exists, f"{rel} should {'' if exists else 'not '}exist\n{r}"
    from dlseminar.engine import checkpoint as ckpt

    for last in tmp_path.rglob("last.pt"):
        ckpt.load(last)  # whichever last.pt is there is whole
        _assert_not_ahead(last.parent)
    if old_last is not None and "run/last.pt" not in may_change:
        assert (tmp_path / "run/last.pt").read_bytes() == old_last
    assert not list(tmp_path.rglob(".lock")), "a lock file was left behind"


def _assert_not_ahead(run: Path) -> None:
    """metrics.csv holds no row for an epoch its last.pt does not hold."""
    if not (run / "metrics.csv").exists():
        return
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    epoch = torch.load(run / "last.pt", weights_only=True)["epoch"]
    assert len(rows) <= epoch, f"{run}: {len(rows)} metrics rows, last.pt holds {epoch} epochs"


# --------------------------------------------------------------------------- real processes
def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "dlseminar", *map(str, args)]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "COLUMNS", "LINES")}
    return dict(env, PYTHONUNBUFFERED="1", **extra)


def _shell(cmd: list[str], redirect: str) -> str:
    import shlex

    return " ".join(map(shlex.quote, cmd)) + " " + redirect


def _result(p: subprocess.Popen, root: Path, out: str = "", err: str = "", **more) -> dict:
    return {"rc": p.returncode, "out": out, "err": err, "root": root, **more}


def real_head(root: Path, both: bool = False) -> dict:
    """`dlsem train ... | head -1` (with both: `2>&1 | head -1`)."""
    p = subprocess.Popen(_cmd("train", *_sets("train.epochs=3"), "--out", "run"), cwd=root, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT if both else subprocess.PIPE, text=True)
    first = p.stdout.readline()
    p.stdout.close()  # the reader leaves: the next write meets a broken pipe
    err = "" if both else p.stderr.read()
    p.wait(timeout=300)
    return _result(p, root, first, err)


def real_shell(root: Path, redirect: str, *args, **env) -> dict:
    """A command with its streams redirected by the shell (`>&-` closes stdout)."""
    cmd = _cmd(*(args or ("train", *_sets("train.epochs=3"), "--out", "run")))
    p = subprocess.Popen(_shell(cmd, redirect), shell=True, cwd=root, env=_env(**env), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
    out, err = p.communicate(timeout=300)
    return _result(p, root, out, err)


def real(root: Path, *args, **env) -> dict:
    p = subprocess.Popen(_cmd(*args), cwd=root, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, encoding="utf-8", errors="replace")
    out, err = p.communicate(timeout=300)
    return _result(p, root, out, err)


def _csv_file(path: Path) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    path.write_text("x1,x2,label\n" + "".join(f"{a:.4f},{b:.4f},{c}\n" for (a, b), c in zip(x, y)), encoding="utf-8")


def real_csv(root: Path) -> dict:
    _csv_file(root / "daten" / "größe.csv")
    sets = ["data.path=daten/größe.csv", "task=classification", "model.name=mlp", "model.hidden=[16]",
            "train.batch_size=16", "train.epochs=2", "logging.plots=false"]
    return real(root, "train", "--data", "csv", *[a for s in sets for a in ("--set", s)], "--out", "runs/müll-ü",
                PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")


def real_signal(root: Path, sig: int) -> dict:
    """A real signal while the run is held at the first step of epoch 2 (last.pt of epoch 1 written)."""
    env = hold_env(root, after=8)
    p = subprocess.Popen(_cmd("train", *_sets("train.epochs=3"), "--out", "run"), cwd=root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: reached(root) or p.poll() is not None, what="the run to reach epoch 2")
    p.send_signal(sig)
    time.sleep(0.2)
    release(root)
    out, err = p.communicate(timeout=120)
    return _result(p, root, out, err)


def real_sweep_narrow(root: Path) -> dict:
    return real(root, "sweep", "--grid", "optim.lr=0.1,0.05", "--out", "sw", *_sets("train.epochs=1"), COLUMNS="20")


# id -> (starter, checker). A checker gets the starter's result.
def ok_run(r, *, out_has=(), err_has=()):
    both = r["out"] + r["err"]
    assert r["rc"] == 0, r
    for bad in ("Traceback", "Exception ignored", "BrokenPipeError", "UnicodeEncodeError"):
        assert bad not in both, r
    for w in out_has:
        assert w in r["out"], r
    for w in err_has:
        assert w in r["err"], r
    assert not temps(r["root"]), temps(r["root"])
    assert not list(r["root"].rglob(".lock")), r


def whole_run(d: Path, epochs: int = 3) -> None:
    """A finished run directory: last.pt, summary.json and one metrics row per epoch."""
    from dlseminar.engine import checkpoint as ckpt

    assert ckpt.load(d / "last.pt")["epoch"] == epochs
    assert (d / "summary.json").exists()
    with open(d / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == epochs


def one_line_each(r) -> None:
    """Every epoch line holds its metrics, and the summary lines are whole, whatever COLUMNS was."""
    lines = r["out"].splitlines()
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert len(epochs) == 3 and all("val/acc" in ln and ln.rstrip().endswith("s)") for ln in epochs), r["out"]
    assert any(ln.startswith("best ") and "val/loss" in ln and "val/acc" in ln for ln in lines), r["out"]
    assert any(ln.startswith("run directory: run") and ln.rstrip().endswith("s)") for ln in lines), r["out"]
    assert any(ln.startswith("diagnosis: too little history to read: 3 epochs") for ln in lines), r["out"]
    assert len(lines) == 8, r["out"]  # 3 epochs, stop reason, best, test, diagnosis, run directory


def check_head(r):
    ok_run(r)
    assert r["out"].startswith("epoch 1/3"), r
    whole_run(r["root"] / "run")


def check_closed(r):
    ok_run(r)
    whole_run(r["root"] / "run")


def check_ascii_dir(r):
    ok_run(r, out_has=("run directory: runs/m?ll-?",))
    whole_run(r["root"] / "runs" / "müll-ü", 2)


def check_missing_ascii(r):
    assert r["rc"] == 2 and "Traceback" not in r["err"] and "UnicodeEncodeError" not in r["err"], r
    lines = error_lines(r["err"])
    assert len(lines) == 1 and "fehlt" in lines[0], r
    assert not (r["root"] / "run").exists()


def check_stderr_closed_error(r):
    assert r["rc"] == 2 and r["out"] == "" and r["err"] == "", r


def check_signal(r, code):
    assert r["rc"] == code, r
    assert "Traceback" not in r["err"] and "resume with: dlsem train --resume" in r["err"], r
    run = r["root"] / "run"
    from dlseminar.engine import checkpoint as ckpt

    last = ckpt.load(run / "last.pt")
    assert 1 <= last["epoch"] < 3 and not (run / "summary.json").exists()
    _assert_not_ahead(run)
    assert not temps(r["root"]) and not (run / ".lock").exists()


def check_sweep_narrow(r):
    ok_run(r)
    lines = r["out"].splitlines()
    rows = [ln for ln in lines if ln.startswith("│") and "finished" in ln]  # the ranked table's member rows
    assert len(rows) == 2 and {ln.split("│")[3].strip() for ln in rows} == {"0.1", "0.05"}, r["out"]
    assert any("optim.lr" in ln and "val/acc" in ln and "test/acc" in ln for ln in lines), r["out"]  # one header line
    assert len(lines) == 12, r["out"]  # 2 progress lines, title, 3 rule/header lines, 2 rows, bottom rule,
    # each member's diagnosis line (whole: one line each), files
    assert [ln.split(":")[1] for ln in lines[9:11]] == [" too little history to read"] * 2, r["out"]


REAL = {
    "head-1": (lambda root: real_head(root), check_head),
    "head-1-stdout-and-stderr": (lambda root: real_head(root, both=True), check_head),
    "stdout-closed": (lambda root: real_shell(root, ">&-"), check_closed),
    "stderr-closed": (lambda root: real_shell(root, "2>&-"), lambda r: (check_closed(r), one_line_each(r))),
    "stdout-and-stderr-closed": (lambda root: real_shell(root, ">&- 2>&-"), check_closed),
    "stderr-closed-user-error": (lambda root: real_shell(root, "2>&-", "train", "--set", "optim.lrr=1"),
                                 check_stderr_closed_error),
    "ascii-encoding-non-ascii-run-dir": (
        lambda root: real(root, "train", *_sets("train.epochs=2"), "--out", "runs/müll-ü", PYTHONIOENCODING="ascii"),
        check_ascii_dir),
    "lang-c-non-ascii-csv-path": (real_csv, check_ascii_dir),
    "ascii-error-names-a-non-ascii-path": (
        lambda root: real(root, "train", "--data", "csv", "--set", "data.path=fehlt/größe.csv", "--out", "run",
                          PYTHONIOENCODING="ascii"), check_missing_ascii),
    "columns-1-pipe": (lambda root: real(root, "train", *_sets("train.epochs=3"), "--out", "run", COLUMNS="1"),
                       lambda r: (ok_run(r), one_line_each(r))),
    "columns-20-pipe": (lambda root: real(root, "train", *_sets("train.epochs=3"), "--out", "run", COLUMNS="20"),
                        lambda r: (ok_run(r), one_line_each(r))),
    "columns-1000-pipe": (lambda root: real(root, "train", *_sets("train.epochs=3"), "--out", "run", COLUMNS="1000"),
                          lambda r: (ok_run(r), one_line_each(r))),
    "sweep-columns-20-pipe": (real_sweep_narrow, check_sweep_narrow),
    "sigint-mid-epoch": (lambda root: real_signal(root, signal.SIGINT), lambda r: check_signal(r, 130)),
    "sigterm-mid-epoch": (lambda root: real_signal(root, signal.SIGTERM), lambda r: check_signal(r, 143)),
}


@pytest.fixture(scope="module")
def real_results(tmp_path_factory):
    """Start every real-process case at once (four at a time): each costs seconds of interpreter start."""
    pool = ThreadPoolExecutor(max_workers=4)
    futures = {}
    for name, (start, _) in REAL.items():
        root = tmp_path_factory.mktemp(name)
        futures[name] = pool.submit(start, root)
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("case", list(REAL))
def test_real_process(case, real_results):
    r = real_results[case].result(timeout=600)
    REAL[case][1](r)
