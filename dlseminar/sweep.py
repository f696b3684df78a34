"""`dlsem sweep` and `dlsem compare`: many runs of one recipe, ranked in one table and one plot.

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
import csv
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

from .config import Config, check_known, resolve
from .errors import ConfigError, Interrupted, UserError

SKIP_KEYS = ("out", "name")  # differ between members by construction


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
    return grid


def _label(settings: dict[str, str]) -> str:
    return ",".join(f"{k}={v.replace('/', '_').replace(' ', '')}" for k, v in settings.items())


def plan(config: Path | None, grid, sets: list[str]) -> list[Member]:
    """One validated Member per grid point (configs resolved now: a bad value stops the sweep before any run)."""
    from . import registry

    registry.load_all()
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


def choose_dir(out: str | None, name: str, signature: dict) -> Path:
    """--out as given (new, empty, or an earlier sweep's), else runs/<name>-sweep[-N]: the first that is
    free or holds a sweep of this very command (which then continues)."""
    if out:
        d = Path(out)
        if d.exists() and not d.is_dir():
            raise ConfigError(f"--out {str(d)!r} exists and is not a directory")
        if d.exists() and any(d.iterdir()) and not (d / "sweep.json").exists():
            raise ConfigError(f"--out {str(d)!r} is not empty and holds no sweep.json; choose another --out")
        return d
    base = Path("runs") / f"{name}-sweep"
    d, n = base, 2
    while d.exists() and any(d.iterdir()):
        old = _read_json(d / "sweep.json")
        if old and {k: old.get(k) for k in signature} == signature:
            break
        d, n = base.with_name(f"{base.name}-{n}"), n + 1
    return d


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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
    for key, value in _flat(m.cfg).items():
        resumable = any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE)
        if key not in SKIP_KEYS and not resumable and old[key] != value:
            raise ConfigError(f"sweep member {str(m.dir)!r} was trained with {key} = {old[key]!r}, this sweep sets "
                              f"{value!r}; choose another --out (or delete that directory)")


def _flat(cfg: Config) -> dict:
    from .config import SCHEMA

    return {k: cfg[k] for k in SCHEMA}


# ---------------------------------------------------------------- running
def _state(m: Member) -> str:
    if (m.dir / "summary.json").exists():
        return "done"
    if (m.dir / "last.pt").exists():
        return "resume"
    return "new"


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
            from .cli import _print_summary  # what `dlsem train` would have printed

            _print_summary(run_dir, summary)
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
    change, such as train.epochs, then follow the sweep; any other difference is refused by the resume)."""
    return [*sets, *(f"{k}={v}" for k, v in m.settings.items())]


def _command(m: Member, config: Path | None, sets: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "dlseminar", "train"]
    if resume:
        cmd += ["--resume", str(m.dir / "last.pt")]
    else:
        cmd += [str(config)] if config else []
    for s in _member_sets(m, sets):
        cmd += ["--set", s]
    return cmd if resume else cmd + ["--out", str(m.dir), "--overwrite"]


def _last_error(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors[-1].removeprefix("error:").strip() if errors else (lines[-1] if lines else ""))[:300]


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
                    m.result["error"] = _last_error(m.dir / "train.log")
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
          echo=print) -> tuple[Path, list[dict], list[str]]:
    """Run (or continue) a sweep; returns its directory, the ranked rows and the grid keys."""
    grid = parse_grid(grid_items)
    for s in sets:
        if s.partition("=")[0].strip() in SKIP_KEYS[:1]:
            raise ConfigError("--set out=... would put every member in one directory; use --out for the sweep directory")
    members = plan(config, grid, sets)
    signature = _signature(config, grid, sets)
    root = choose_dir(out, members[0].cfg["name"], signature)
    for m in members:
        m.dir = root / m.name
        m.cfg = m.cfg.replace(out=str(m.dir))
        _check_same_config(m)
    root.mkdir(parents=True, exist_ok=True)
    record = {**signature, "jobs": jobs, "members": [{"name": m.name, "settings": m.settings} for m in members]}
    previous = {r["name"]: r for r in (_read_json(root / "sweep.json") or {}).get("members", [])}
    for r in record["members"]:
        r.update({k: v for k, v in previous.get(r["name"], {}).items() if k not in r})
    by_name = {r["name"]: r for r in record["members"]}

    def save():
        tmp = root / ".tmp-sweep.json"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, root / "sweep.json")

    todo = []
    count = itertools.count(1)
    for m in members:
        state = _state(m)
        if state == "done":
            echo(f"[{next(count)}/{len(members)}] {m.name}: finished earlier, skipped")
            by_name[m.name].update(action="skipped")
        else:
            todo.append((m, state == "resume"))
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
    except (Interrupted, KeyboardInterrupt):
        save()
        print(f"\nsweep interrupted after {time.perf_counter() - t0:.0f}s; run the same command again to continue "
              f"(finished members are skipped, the others resume from their last.pt)", file=sys.stderr)
        raise
    keys = [k for k, _ in grid]
    rows = collect([m.dir for m in members], record)
    write_outputs(root, rows, "sweep.csv", keys)
    return root, rows, keys


# ---------------------------------------------------------------- reading runs back
def _mode(monitor: str, cfg_mode: str | None = None) -> str:
    """The Trainer's rule: the config's early_stop.mode, else min for losses and errors, max otherwise."""
    if cfg_mode in ("min", "max"):
        return cfg_mode
    return "min" if monitor.endswith("loss") or monitor.split("/")[-1] in ("mse", "mae", "rmse") else "max"


def read_history(run_dir: Path) -> list[dict]:
    """metrics.csv as a list of rows of floats (empty cells and text as NaN)."""
    rows = []
    try:
        with open(run_dir / "metrics.csv", newline="") as f:
            for r in csv.DictReader(f):
                row = {}
                for k, v in r.items():
                    try:
                        row[k] = int(v) if k == "epoch" else float(v)
                    except (TypeError, ValueError):
                        row[k] = math.nan
                rows.append(row)
    except OSError:
        pass
    return rows


def run_row(run_dir: Path, record: dict | None = None) -> dict:
    """One run directory as a table row: status, monitor, best value, test metrics, settings."""
    record = record or {}
    s = _read_json(run_dir / "summary.json")
    cfg = {}
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        pass
    row = {"run": run_dir.name, "dir": str(run_dir), "settings": record.get("settings", {}), "config": cfg,
           "error": record.get("error") or "", "monitor": None, "mode": "max"}
    if s is not None:
        reason = s.get("stop_reason") or ""
        row.update(status="diverged" if "diverged" in reason else "finished", monitor=s.get("monitor", "val/loss"),
                   summary=s, stop_reason=reason)
        row["mode"] = s.get("mode") or _mode(row["monitor"], (cfg.get("early_stop") or {}).get("mode"))
    else:
        rc = record.get("rc")
        if rc in (130, 143):
            row["status"] = "interrupted"
        elif rc is None and ((run_dir / "last.pt").exists() or (run_dir / "metrics.csv").exists()):
            row["status"] = "unfinished"  # not run by this sweep yet, or a run still going or killed
        else:  # a non-zero exit, or none recorded and nothing trained
            row["status"] = "failed"
            row["error"] = row["error"] or _last_error(run_dir / "train.log") or "no summary.json"
    row["history"] = read_history(run_dir)
    _score(row, row.get("monitor"))
    return row


def _score(row: dict, monitor: str | None) -> None:
    s = row.get("summary") or {}
    row["best"] = (s.get("best") or {}).get(monitor, math.nan) if monitor else math.nan
    metric = monitor.split("/", 1)[-1] if monitor else None
    row["test"] = (s.get("test") or {}).get(f"test/{metric}", math.nan) if metric else math.nan


def collect(dirs: list[Path], record: dict | None = None) -> list[dict]:
    """Rows for these run directories, ranked: finished runs by the common monitor in its direction,
    then diverged ones, then unfinished or failed ones."""
    by_name = {r["name"]: r for r in (record or {}).get("members", [])}
    rows = [run_row(d, by_name.get(d.name)) for d in dirs]
    monitors = [r["monitor"] for r in rows if r.get("monitor")]
    monitor = max(set(monitors), key=monitors.count) if monitors else None
    mode = next((r["mode"] for r in rows if r.get("monitor") == monitor), "max")
    for r in rows:
        r["monitor"], r["mode"] = monitor, mode
        _score(r, monitor)

    def key(r):
        group = {"finished": 0, "diverged": 1}.get(r["status"], 2)
        v = r["best"]
        v = math.inf if not isinstance(v, float) or not math.isfinite(v) else (-v if mode == "max" else v)
        return group, v, r["run"]

    rows.sort(key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def differing_keys(rows: list[dict], limit: int = 6) -> list[str]:
    """Config keys whose values differ between the runs (the columns a comparison is about); fills each
    row's settings with its values of them."""
    from .config import SCHEMA

    cfgs = {}
    for i, r in enumerate(rows):
        try:
            cfgs[i] = resolve(base=r["config"]) if r["config"] else None
        except UserError:
            cfgs[i] = None
    known = [c for c in cfgs.values() if c is not None]
    keys = [k for k in SCHEMA if k not in SKIP_KEYS and len({json.dumps(c[k]) for c in known}) > 1][:limit]
    for i, r in enumerate(rows):
        if cfgs[i] is not None and not r["settings"]:
            r["settings"] = {k: _text(cfgs[i][k]) for k in keys}
    return keys


def _text(v) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def write_outputs(folder: Path, rows: list[dict], csv_name: str, keys: list[str]) -> None:
    """<folder>/<csv_name> and <folder>/plots/compare.png."""
    from . import plots

    (folder / "plots").mkdir(parents=True, exist_ok=True)
    tests = sorted({k for r in rows for k in ((r.get("summary") or {}).get("test") or {})})
    header = ["rank", "run", "status", *keys, "monitor", "mode", "best", "best_epoch", "epochs_run", *tests,
              "seconds", "stop_reason", "error", "dir"]
    tmp = folder / f".tmp-{csv_name}"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            s = r.get("summary") or {}
            w.writerow([r["rank"], r["run"], r["status"], *[r["settings"].get(k, "") for k in keys], r["monitor"] or "",
                        r["mode"], _cell(r["best"]), s.get("best_epoch", ""), s.get("epochs_run", ""),
                        *[_cell((s.get("test") or {}).get(k)) for k in tests], s.get("seconds", ""),
                        r.get("stop_reason", ""), r["error"], r["dir"]])
    os.replace(tmp, folder / csv_name)
    plots.compare(folder / "plots" / "compare.png",
                  [{"label": r["run"], "history": r["history"], "status": r["status"]} for r in rows],
                  rows[0]["monitor"] or "val/loss")


def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else v


def table(rows: list[dict], keys: list[str], title: str = "", names: bool = True):
    """The ranked rich Table (names: a run column; a sweep's settings columns name its members already)."""
    from rich.markup import escape
    from rich.table import Table

    monitor = rows[0]["monitor"] if rows else None
    metric = monitor.split("/", 1)[-1] if monitor else "-"
    arrow = "↑" if rows and rows[0]["mode"] == "max" else "↓"
    t = Table("#", *(["run"] if names or not keys else []), "status", *keys, f"{monitor or 'monitor'} {arrow}",
              f"test/{metric}", "best epoch", "epochs", "seconds", "note", title=title or None)
    for r in rows:
        s = r.get("summary") or {}
        note = r["error"] if r["status"] in ("failed", "interrupted") else (
            (r.get("stop_reason") or "").split(":")[0] if r["status"] == "diverged" else "")
        t.add_row(str(r["rank"]), *([escape(r["run"])] if names or not keys else []), _status_markup(r["status"]),
                  *[escape(r["settings"].get(k, "")) for k in keys], _num(r["best"]), _num(r["test"]),
                  str(s.get("best_epoch", "")), str(s.get("epochs_run", "")),
                  f"{s['seconds']:.3g}" if "seconds" in s else "", escape(note[:70]))
    return t


def _status_markup(status: str) -> str:
    return {"finished": "finished", "diverged": "[bold red]diverged[/]", "failed": "[bold red]failed[/]"}.get(
        status, f"[yellow]{status}[/]")


def _num(v) -> str:
    if not isinstance(v, float):
        return str(v)
    if not math.isfinite(v):
        return "nan" if v != v else str(v)
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3g}"


# ---------------------------------------------------------------- dlsem compare
def expand(paths: list[Path]) -> tuple[list[Path], dict | None, Path | None]:
    """Run directories from the arguments (a sweep directory stands for its members); with exactly one
    sweep directory given, also its record and path."""
    dirs, record, sweep_dir = [], None, None
    for p in paths:
        if not p.is_dir():
            raise ConfigError(f"{str(p)!r} is not a run or sweep directory")
        rec = _read_json(p / "sweep.json")
        if rec is not None:
            members = [p / r["name"] for r in rec.get("members", [])]
            dirs += members
            record, sweep_dir = rec, p
        elif (p / "metrics.csv").exists() or (p / "summary.json").exists() or (p / "config.yaml").exists():
            dirs.append(p)
        else:
            subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / "config.yaml").exists())
            if not subs:
                raise ConfigError(f"{str(p)!r} holds no run (no config.yaml, metrics.csv or summary.json) "
                                  f"and no sweep.json")
            dirs += subs
    if len(paths) != 1:
        record, sweep_dir = None, None
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise ConfigError("the same run directory is given twice")
    return dirs, record, sweep_dir


def compare(paths: list[Path], out: str | None = None) -> tuple[Path, list[dict], list[str], str]:
    """The ranked rows of existing runs; writes <out>/compare.csv (sweep.csv for a sweep directory compared
    into itself) and <out>/plots/compare.png. Returns (out folder, rows, setting keys, csv name)."""
    dirs, record, sweep_dir = expand(paths)
    rows = collect(dirs, record)
    keys = [k for k, _ in record["grid"]] if record else differing_keys(rows)
    if out is None and sweep_dir is not None:
        folder, name = sweep_dir, "sweep.csv"
    else:
        folder, name = (Path(out) if out else _numbered(Path("runs") / "compare")), "compare.csv"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {str(folder)!r} exists and is not a directory")
    write_outputs(folder, rows, name, keys)
    return folder, rows, keys, name


def _numbered(base: Path) -> Path:
    d, n = base, 2
    while d.exists() and any(d.iterdir()):
        d, n = base.with_name(f"{base.name}-{n}"), n + 1
    return d
