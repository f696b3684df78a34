"""Running a sweep's members: which of them still need to train, and training them here or in child processes.

A member directory left by an earlier invocation of the same sweep decides what happens to it (member_state):
a summary.json means finished (skipped, or continued when the sweep asks for more epochs), a last.pt
means interrupted (resumed), nothing means new. With --jobs 1 each member trains in this process, its
console output in its train.log (in_process); with --jobs N, N `python -m dlseminar train` processes
at a time, each in its own session and with its share of the CPU threads (in_processes).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import yaml

from .compare import last_error, read_json
from .errors import ConfigError, Interrupted, UserError
from .summary import RunSummary
from .sweepgrid import Member


def member_state(m: Member) -> str:
    """'done' (skip it), 'extend' (finished, but this sweep asks for more epochs), 'resume' or 'new'."""
    if (m.dir / "summary.json").exists():
        return _finished(m)
    if (m.dir / "last.pt").exists():
        return "resume"
    return "new"


def _finished(m: Member) -> str:
    """A member that has its summary.json, run again into the same --out with another train.epochs: one
    that ran all its epochs continues to the new number from its last.pt (exactly as one longer run);
    one that stopped early or diverged stands as it is; fewer epochs than it ran would put shorter and
    longer runs in one table and are refused."""
    try:
        old = int(yaml.safe_load((m.dir / "config.yaml").read_text())["train"]["epochs"])
        summary = RunSummary.from_dict(read_json(m.dir / "summary.json") or {})
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return "done"
    new = m.cfg["train.epochs"]
    ran = old if summary.epochs_run is None else summary.epochs_run
    if new < old and ran > new:
        raise ConfigError(f"sweep member {str(m.dir)!r} already ran {ran} epochs (train.epochs = {old}); this sweep asks "
                          f"for {new}: the table would mix them; keep train.epochs >= {old} or choose another --out")
    if new > old and str(summary.stop_reason or "").startswith("reached") and (m.dir / "last.pt").exists():
        return "extend"
    return "done"


def in_process(m: Member, sets: list[str], resume: bool) -> int:
    """Train one member here, its console output into its train.log; returns the exit code a process would."""
    from . import run

    sets = _member_sets(m, sets)

    m.dir.mkdir(parents=True, exist_ok=True)
    with open(m.dir / "train.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            if resume:
                run_dir, summary = run.train(None, resume=str(m.dir / "last.pt"), sets=sets)
            else:
                run_dir, summary = run.train(m.cfg, overwrite=True)
            from .summary import print_summary

            print_summary(run_dir, summary)  # what `dlsem train` would have printed
            return 0
        except UserError as e:
            print(f"error: {e}")
            m.result["error"] = str(e)
            return 2
        except Interrupted:
            raise
        except Exception as e:  # a bug in one member must not take the others down; its traceback is in train.log
            traceback.print_exc()
            m.result["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            return 1


def _member_sets(m: Member, sets: list[str]) -> list[str]:
    """The sweep's --set items and the member's grid values (also given to a resume: the keys a resume may
    change, such as train.epochs, then follow the sweep; any other difference is refused by the resume).
    train.epochs is stated too: a resume starts from the checkpoint's config, not the sweep's recipe file."""
    return [*sets, *(f"{k}={v}" for k, v in m.settings.items()), f"train.epochs={m.cfg['train.epochs']}"]


def _command(m: Member, config: Path | None, sets: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "dlseminar", "train"]
    if resume:
        cmd += ["--resume", str(m.dir / "last.pt")]
    else:
        cmd += [str(config)] if config else []
    for s in _member_sets(m, sets):
        cmd += ["--set", s]
    return cmd if resume else cmd + ["--out", str(m.dir), "--overwrite"]


def in_processes(todo: list[tuple[Member, bool]], config, sets, jobs: int, done) -> None:
    """Run `todo` as `jobs` child processes at a time; done(member) after each."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of each child taking them all
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    pending, running = list(todo), {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                m, resume = pending.pop(0)
                m.dir.mkdir(parents=True, exist_ok=True)
                log = open(m.dir / "train.log", "a")
                p = subprocess.Popen(_command(m, config, sets, resume), stdout=log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
                running[p] = (m, log)
            time.sleep(0.1)
            for p in [p for p in running if p.poll() is not None]:
                m, log = running.pop(p)
                log.close()
                m.result["rc"] = p.returncode
                if p.returncode:
                    m.result["error"] = last_error(m.dir / "train.log")
                done(m)
    except BaseException:  # Ctrl-C, SIGTERM: each member writes its last.pt and stops (a second Ctrl-C: at once)
        for p in running:
            p.send_signal(signal.SIGINT)
        try:
            for p in running:
                p.wait()
        except BaseException:
            for p in running:
                p.send_signal(signal.SIGINT)
            raise
        raise

