"""`dlsem sweep`: many runs of one recipe, ranked in one table and one plot (compare.py ranks and draws).

A sweep runs the Cartesian product of its --grid values, each member in its own run directory
under one sweep directory (`runs/<name>-sweep/optim.name=adam,optim.lr=0.01/`), then ranks the
members by their monitored metric (in its direction: max for accuracies, min for losses) into
a rich table, `sweep.csv` and `plots/compare.png`. `sweep.json` records the command and each
member's outcome, so the same command started again continues: members with a summary.json are
skipped, members with a last.pt are resumed, the others run again.

With --jobs 1 the members train one after another in this process (no interpreter start per
member); with --jobs N, N `python -m dlseminar train` processes at a time, each in its own
session (a Ctrl-C reaches the sweep, which passes one SIGINT to each member: each writes its
last.pt and stops) and with its share of the CPU threads.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import io, runlock
from .compare import SKIP_KEYS, collect, last_error, read_json, run_row, write_outputs
from .config import Config, check_known, resolve, same_setting
from .errors import ConfigError, Interrupted, UserError
from .summary import RunSummary


MAX_MEMBERS = 1000  # grid points in one sweep


@dataclass
class Member:
    name: str  # its directory name: key=value,key=value
    settings: dict[str, str]  # grid key -> value as typed
    dir: Path
    cfg: Config | None = None
    result: dict = field(default_factory=dict)  # action, rc, error of this invocation


# ---------------------------------------------------------------- the grid
def _split_values(raw: str) -> list[str]:
    """'sgd,adam' -> ['sgd', 'adam']; commas inside [...] belong to a list value: '[8,8],[16]'."""
    out, depth, cur = [], 0, ""
    for ch in raw:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    if depth != 0:
        raise ConfigError(f"--grid values {raw!r} have unbalanced brackets")
    return [v.strip() for v in out]


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """['optim.name=sgd,adam', 'optim.lr=0.1,0.01'] -> [('optim.name', ['sgd', 'adam']), ...]."""
    if not items:
        raise ConfigError("a sweep needs at least one --grid key=value1,value2,... (e.g. --grid optim.name=sgd,adam)")
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--grid expects key=value1,value2,... (got {item!r})")
        check_known([key], "--grid")
        if key in SKIP_KEYS:
            raise ConfigError(f"--grid cannot vary {key}: every member gets its own directory under the sweep's")
        if any(k == key for k, _ in grid):
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid {key}=a,b,c")
        values = _split_values(raw)
        if any(not v for v in values):
            raise ConfigError(f"--grid {item!r} has an empty value (values are separated by commas)")
        if len(set(values)) < len(values):
            raise ConfigError(f"--grid {item!r} repeats a value")
        grid.append((key, values))
    size = math.prod(len(v) for _, v in grid)
    if size > MAX_MEMBERS:  # a typo'd range would otherwise start hours of runs and thousands of folders
        sizes = " x ".join(str(len(v)) for _, v in grid)
        raise ConfigError(f"--grid makes {size:,} members ({sizes}); a sweep runs at most {MAX_MEMBERS:,}: "
                          f"narrow the grid or split it into several sweeps")
    return grid


def _label(settings: dict[str, str]) -> str:
    return ",".join(f"{k}={v.replace('/', '_').replace(' ', '')}" for k, v in settings.items())


def plan(config: Path | None, grid, sets: list[str]) -> list[Member]:
    """One validated Member per grid point (configs resolved now: a bad value stops the sweep before any run)."""
    from . import registry
    from .catalog import load_all

    load_all()
    members = []
    for combo in itertools.product(*[[(k, v) for v in vals] for k, vals in grid]):
        settings = dict(combo)
        cfg = resolve(config, [*sets, *(f"{k}={v}" for k, v in settings.items())])
        for key, reg in (("model.name", registry.MODELS), ("data.name", registry.DATASETS),
                         ("optim.name", registry.OPTIMIZERS), ("sched.name", registry.SCHEDULES),
                         ("loss.name", registry.LOSSES), ("task", registry.TASKS)):
            if cfg[key] != "auto":
                reg.get(cfg[key])  # an unknown name: one error line with a suggestion
        members.append(Member(_label(settings), settings, Path(), cfg))
    names = [m.name for m in members]
    if len(set(names)) < len(names):
        raise ConfigError("two grid points give the same directory name; use values that differ in more than '/' or spaces")
    return members


# ---------------------------------------------------------------- the sweep directory
def _signature(config, grid, sets) -> dict:
    return {"config": str(Path(config).resolve()) if config else None, "sets": list(sets),
            "grid": [[k, list(v)] for k, v in grid]}


def choose_dir(out: str | None, name: str, signature: dict, overwrite: bool = False, inputs=()) -> Path:
    """--out as given (new, empty, or an earlier sweep's: its sweep.json marks it, and it continues), else
    runs/<name>-sweep[-N]: the first that is free or holds a sweep of this very command. Another non-empty
    --out needs `overwrite`; a run directory, or with --overwrite a folder holding the inputs, never."""
    if out:
        d = Path(out)
        return io.check_dir(d, overwrite=overwrite, own=(d / "sweep.json").is_file(), inputs=inputs, what="a sweep")

    def same_sweep(d: Path) -> bool:
        old = read_json(d / "sweep.json")
        return bool(old) and {k: old.get(k) for k in signature} == signature

    d = io.numbered_dir(Path("runs") / f"{name}-sweep", reuse=same_sweep)
    # `runs` a file, or a folder this user cannot write: one line now, not an OSError after the plan
    return io.check_dir(d, own=(d / "sweep.json").is_file(), inputs=inputs, what="a sweep")


def _check_same_config(m: Member) -> None:
    """A member directory left by an earlier sweep must hold this very config, except where it lives and
    the keys a resume may change (run.RESUMABLE: epochs, patience, logging, ...)."""
    from .run import RESUMABLE

    path = m.dir / "config.yaml"
    if not path.exists():
        return
    try:
        old = resolve(base=yaml.safe_load(path.read_text()))
    except (UserError, yaml.YAMLError, OSError):
        return  # unreadable: the member runs again and rewrites it
    for key, value in _flat(m.cfg.absolute()).items():  # config.yaml stores data paths absolute
        resumable = any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE)
        if key not in SKIP_KEYS and not resumable and not same_setting(key, old[key], value):
            raise ConfigError(f"sweep member {str(m.dir)!r} was trained with {key} = {old[key]!r}, this sweep sets "
                              f"{value!r}; choose another --out (or delete that directory)")


def _flat(cfg: Config) -> dict:
    from .config import SCHEMA

    return {k: cfg[k] for k in SCHEMA}


# ---------------------------------------------------------------- running
def _state(m: Member) -> str:
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


def _in_process(m: Member, sets: list[str], resume: bool) -> int:
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


def _in_processes(todo: list[tuple[Member, bool]], config, sets, jobs: int, done) -> None:
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


def sweep(config: Path | None, grid_items: list[str], sets: list[str], jobs: int = 1, out: str | None = None,
          echo=None, overwrite: bool = False) -> tuple[Path, list[dict], list[str]]:
    """Run (or continue) a sweep; returns its directory, the ranked rows and the grid keys.
    overwrite: --out may be a non-empty folder that holds no sweep (see choose_dir)."""
    echo = echo or (lambda line: print(line, flush=True))  # a line per member, also when piped to a log
    grid = parse_grid(grid_items)
    for s in sets:
        if s.partition("=")[0].strip() in SKIP_KEYS[:1]:
            raise ConfigError("--set out=... would put every member in one directory; use --out for the sweep directory")
    members = plan(config, grid, sets)
    signature = _signature(config, grid, sets)
    root = choose_dir(out, members[0].cfg["name"], signature, overwrite, io.config_inputs(members[0].cfg))
    for m in members:
        m.dir = root / m.name
        m.cfg = m.cfg.replace(out=str(m.dir))
        _check_same_config(m)
    root.mkdir(parents=True, exist_ok=True)
    # one sweep at a time in a sweep directory (each member's run directory has its own lock);
    # held until the command ends (cli.main releases it), so the zoo's table and plot are covered too
    runlock.acquire(root, "sweep directory")
    runlock.remove_temps(root)  # of a sweep killed while writing sweep.json
    record = {**signature, "jobs": jobs, "members": [{"name": m.name, "settings": m.settings} for m in members]}
    previous = {r["name"]: r for r in (read_json(root / "sweep.json") or {}).get("members", [])}
    for r in record["members"]:
        r.update({k: v for k, v in previous.get(r["name"], {}).items() if k not in r})
    by_name = {r["name"]: r for r in record["members"]}

    def save():
        io.write_text(root / "sweep.json", json.dumps(record, indent=2) + "\n")

    todo = []
    count = itertools.count(1)
    states = [_state(m) for m in members]  # all checked before anything trains
    for m, state in zip(members, states):
        if state == "done":
            echo(f"[{next(count)}/{len(members)}] {m.name}: finished earlier, skipped")
            by_name[m.name].update(action="skipped")
        else:
            todo.append((m, state in ("resume", "extend")))
    save()
    t0 = time.perf_counter()

    def done(m: Member):
        r = by_name[m.name]
        r.update(action="resumed" if m.result.get("resumed") else "ran", rc=m.result.get("rc", 0),
                 error=m.result.get("error"))
        row = run_row(m.dir, r)
        save()
        echo(f"[{next(count)}/{len(members)}] {m.name}: {row['status']}"
             + (f" {row['monitor']} {row['best']:.4g}" if row["monitor"] and math.isfinite(row["best"]) else "")
             + (f" ({row['error']})" if row["status"] == "failed" else ""))

    for m, resume in todo:
        m.result["resumed"] = resume
    try:
        if jobs == 1:
            for m, resume in todo:
                m.result["rc"] = _in_process(m, sets, resume)
                done(m)
        else:
            _in_processes(todo, config, sets, jobs, done)
    except BaseException as e:
        save()
        if isinstance(e, Interrupted) or not isinstance(e, Exception):  # Ctrl-C, SIGTERM (cli._Terminated)
            print(f"\nsweep interrupted after {time.perf_counter() - t0:.0f}s; run the same command again to continue "
                  f"(finished members are skipped, the others resume from their last.pt)", file=sys.stderr)
        raise
    keys = [k for k, _ in grid]
    rows = collect([m.dir for m in members], record)
    write_outputs(root, rows, "sweep.csv", keys)
    return root, rows, keys
