"""Reading run directories back and ranking them: what `dlsem sweep` ends with and `dlsem compare` does.

A row per run: its status (finished, diverged: the engine's stop_reason says so, failed,
interrupted, unfinished), the monitored metric at its best epoch and the test counterpart, the
task's main metric too when the monitor is another one (a loss), its settings, and for a
comparison of weight penalties the share of near-zero weights of the model it tested. Ranking:
finished runs by the common monitor in its direction (the direction the run recorded, else its
Task's), then diverged runs, then the rest. ranked.py writes the rows out: a rich table, a CSV and
plots/compare.png (viz/compare.py: overlaid learning curves).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import yaml

from . import io
from .config import resolve
from . import runfiles
from .errors import ConfigError, UserError
from .ranked import write_outputs
from .summary import RunSummary

SKIP_KEYS = ("out", "name")  # differ between runs by construction (a sweep's members, a copy)
# config keys that penalise the size of the weights: a comparison over one of them shows how many went to ~0
PENALTY_KEYS = ("loss.l1", "loss.l2", "optim.weight_decay")


def read_json(path: Path) -> dict | None:
    """A JSON object, or None when the file is missing or damaged (strict readers: runfiles)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def last_error(log: Path) -> str:
    """The last `error:` line of a member's train.log (else its last line)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors[-1].removeprefix("error:").strip() if errors else (lines[-1] if lines else ""))[:300]


def read_history(run_dir: Path, summary: RunSummary | None = None) -> list[dict]:
    """metrics.csv as a list of rows of floats (empty cells as NaN); a damaged file is a DataError."""
    header, rows = runfiles.read_metrics(run_dir, summary) or ([], [])
    return [{k: (int(v) if k == "epoch" else float(v) if v else math.nan) for k, v in zip(header, r)} for r in rows]


def run_row(run_dir: Path, record: dict | None = None) -> dict:
    """One run directory as a table row: status, monitor, best value, test metrics, settings.

    Its summary.json, metrics.csv and config.yaml are read strictly: a damaged one is a DataError naming it."""
    record = record or {}
    s = runfiles.read_summary(run_dir)
    cfg = runfiles.read_config(run_dir) or {}
    row = {"run": run_dir.name, "dir": str(run_dir), "settings": record.get("settings", {}), "config": cfg,
           "error": record.get("error") or "", "monitor": None, "mode": "max"}
    if s is not None:
        reason = s.stop_reason or ""
        row.update(status="diverged" if "diverged" in reason else "finished", monitor=s.monitor,
                   summary=s, stop_reason=reason)
        row["mode"] = s.direction((cfg.get("early_stop") or {}).get("mode"))
    else:
        rc = record.get("rc")
        if rc in (130, 143):
            row["status"] = "interrupted"
        elif rc is None and ((run_dir / "last.pt").exists() or (run_dir / "metrics.csv").exists()):
            row["status"] = "unfinished"  # not run by this sweep yet, or a run still going or killed
        else:  # a non-zero exit, or none recorded and nothing trained
            row["status"] = "failed"
            row["error"] = row["error"] or last_error(run_dir / "train.log") or "no summary.json"
    row["history"] = read_history(run_dir, s)
    _score(row, row.get("monitor"))
    return row


def _score(row: dict, monitor: str | None) -> None:
    """The row's validation figures, from the epoch whose weights the run kept and tested: its best epoch,
    or its last one where early_stop.restore_best was off (a run is ranked on the model it hands over)."""
    s = row.get("summary") or RunSummary()
    at = s.best
    row["epoch"] = s.best_epoch
    history = row.get("history") or []
    if s.restored_best is False and history:
        at, row["epoch"] = history[-1], history[-1].get("epoch", s.epochs_run)
    row["best"] = at.get(monitor, math.nan) if monitor else math.nan
    metric = monitor.split("/", 1)[-1] if monitor else None
    row["test"] = s.test.get(f"test/{metric}", math.nan) if metric else math.nan
    main = row.get("main")  # the task's main metric where the monitor is another one: at that epoch, and tested
    row["main_best"] = at.get(main, math.nan) if main else math.nan
    row["main_test"] = s.test.get(f"test/{main.split('/', 1)[-1]}", math.nan) if main else math.nan
    row["tie"] = at.get("val/loss")  # equal monitors: the lower validation loss ranks first


def main_metric(rows: list[dict]) -> str | None:
    """The main metric of the runs' task (the most common one among them): the monitor its Task class
    declares ("val/acc" for classification), whatever a run chose to monitor. None when no run's
    summary names a task registered here."""
    tasks = [s.task for r in rows if (s := r.get("summary")) is not None and isinstance(s.task, str)]
    if not tasks:
        return None
    from .catalog import load_all
    from .registry import TASKS

    load_all()
    declared = [TASKS.get(t).fn.monitor for t in tasks if t in TASKS]
    return Counter(declared).most_common(1)[0][0] if declared else None


def add_near_zero(rows: list[dict], keys: list[str]) -> None:
    """For a comparison whose setting columns include a weight penalty (PENALTY_KEYS): each row's
    `near_zero`, the share of near-zero weights in the model its run tested (NaN without one)."""
    if not any(k in PENALTY_KEYS for k in keys):
        return
    for r in rows:
        r["near_zero"] = near_zero_share(Path(r["dir"]), r.get("summary"))


def near_zero_share(run_dir: Path, s: RunSummary | None) -> float:
    """The share of |w| < health.THRESHOLD among the weights the L1/L2 penalties act on, in the checkpoint
    the run was tested with (summary.test_checkpoint); NaN when there is none. Read from the checkpoint's
    state dict without building the model: its tensors of 2+ dimensions are exactly the parameters
    engine/penalty.penalty_weights takes (no model registers a 2-D buffer or freezes a weight)."""
    name = s.test_checkpoint if s is not None else None
    if name not in ("best.pt", "last.pt") or not (run_dir / name).is_file():
        return math.nan
    from .engine import checkpoint
    from .health import THRESHOLD

    weights = [t for t in checkpoint.load(run_dir / name)["model"].values() if t.ndim > 1]
    total = sum(t.numel() for t in weights)
    return sum(int((t.abs() < THRESHOLD).sum()) for t in weights) / total if total else math.nan


def collect(dirs: list[Path], record: dict | None = None) -> list[dict]:
    """Rows for these run directories, ranked: finished runs by the common monitor in its direction
    (ties, common with accuracies on small splits, by val/loss at the best epoch), then diverged
    ones, then unfinished or failed ones."""
    by_name = {r["name"]: r for r in (record or {}).get("members", [])}
    rows = [run_row(d, by_name.get(d.name)) for d in dirs]
    monitors = [r["monitor"] for r in rows if r.get("monitor")]
    monitor = max(set(monitors), key=monitors.count) if monitors else None
    mode = next((r["mode"] for r in rows if r.get("monitor") == monitor), "max")
    main = main_metric(rows)
    main = main if main != monitor else None  # shown once, as the monitor
    for r in rows:
        r["monitor"], r["mode"], r["main"] = monitor, mode, main
        _score(r, monitor)

    def finite(v, sign=1.0):
        return sign * v if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    def key(r):
        group = {"finished": 0, "diverged": 1}.get(r["status"], 2)
        tie = r.get("tie")
        return group, finite(r["best"], -1.0 if mode == "max" else 1.0), finite(tie), r["run"]

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
            r["settings"] = {k: setting_text(cfgs[i][k]) for k in keys}
    return keys


def setting_text(v) -> str:
    """A config value as one short line of YAML, as the tables show settings."""
    return yaml.safe_dump(v, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


# ---------------------------------------------------------------- dlsem compare
def expand(paths: list[Path]) -> tuple[list[Path], dict | None, Path | None]:
    """Run directories from the arguments (a sweep directory stands for its members); with exactly one
    sweep directory given, also its record and path."""
    dirs, record, sweep_dir = [], None, None
    for p in paths:
        if not p.exists():
            raise ConfigError(f"{str(p)!r} does not exist")
        if not p.is_dir():
            raise ConfigError(f"{str(p)!r} is not a run or sweep directory")
        rec = runfiles.read_sweep_record(p)  # a damaged sweep.json is an error, not a folder of loose runs
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


def compare(paths: list[Path], out: str | None = None, overwrite: bool = False) -> tuple[Path, list[dict], list[str], str]:
    """The ranked rows of existing runs; writes <out>/compare.csv (sweep.csv for a sweep directory compared
    into itself) and <out>/plots/compare.png. Returns (out folder, rows, setting keys, csv name).

    An --out holding compare.csv (an earlier comparison), or the sweep directory compared, is rewritten;
    another non-empty one needs `overwrite`; a run directory (one compared, or any other) never."""
    dirs, record, sweep_dir = expand(paths)
    if out is None and sweep_dir is not None:
        folder, name = sweep_dir, "sweep.csv"
    else:
        folder, name = (Path(out) if out else io.numbered_dir(Path("runs") / "compare")), "compare.csv"
        own = (folder / "compare.csv").is_file() or (sweep_dir is not None and io.same_path(folder, sweep_dir))
        io.check_dir(folder, overwrite=overwrite, own=own, what="a comparison",
                     inputs=[(d, "a run directory being compared") for d in dirs])
    rows = collect(dirs, record)
    keys = [k for k, _ in record["grid"]] if record else differing_keys(rows)
    add_near_zero(rows, keys)
    write_outputs(folder, rows, name, keys)
    return folder, rows, keys, name
