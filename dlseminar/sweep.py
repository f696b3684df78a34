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

The grid and its members' configs are sweepgrid.py; what to do with each member and running it,
sweepmembers.py; this module owns the sweep directory (sweep.json, the lock) and the order of things.
"""
from __future__ import annotations

import itertools
import json
import math
import sys
import time
from pathlib import Path

import yaml

from . import io, runlock
from .compare import SKIP_KEYS, add_near_zero, collect, read_json, run_row
from .config import Config, resolve, same_setting
from .errors import ConfigError, Interrupted, UserError
from .ranked import write_outputs
from .sweepgrid import Member, parse_grid, plan
from .sweepmembers import in_process, in_processes, member_state


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


# ---------------------------------------------------------------- the sweep
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
    states = [member_state(m) for m in members]  # all checked before anything trains
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
                m.result["rc"] = in_process(m, sets, resume)
                done(m)
        else:
            in_processes(todo, config, sets, jobs, done)
    except BaseException as e:
        save()
        if isinstance(e, Interrupted) or not isinstance(e, Exception):  # Ctrl-C, SIGTERM (cli._Terminated)
            print(f"\nsweep interrupted after {time.perf_counter() - t0:.0f}s; run the same command again to continue "
                  f"(finished members are skipped, the others resume from their last.pt)", file=sys.stderr)
        raise
    keys = [k for k, _ in grid]
    rows = collect([m.dir for m in members], record)
    add_near_zero(rows, keys)
    write_outputs(root, rows, "sweep.csv", keys)
    return root, rows, keys
