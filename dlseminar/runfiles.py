"""Reading a run directory's files back, strictly: summary.json, metrics.csv, config.yaml, and a sweep's
sweep.json and its tables (sweep.csv, compare.csv, zoo.csv).

`dlsem report` and `dlsem compare` read what earlier commands wrote; a user may since have edited,
truncated or replaced a file. A file that is missing is None (a run still going has no summary.json);
one that is there but damaged (not JSON, binary bytes, a ragged row, text where a number belongs, a
value of the wrong type) is a DataError naming the file, what is wrong and what to do, in one line,
never a traceback and never a table with silent gaps.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import yaml

from .errors import DataError
from .summary import RunSummary

NUMBER = (int, float)
# summary.json keys a reader uses, with the types dlsem train writes (None allowed where it writes None)
SUMMARY_TYPES = {"name": str, "monitor": str, "mode": str, "stop_reason": (str, type(None)), "best": dict, "test": dict,
                 "epochs_run": int, "best_epoch": (int, type(None)), "seconds": NUMBER, "params": int,
                 "restored_best": bool, "test_details": (dict, type(None)), "test_checkpoint": str,
                 "diagnosis": (dict, type(None))}
SUMMARY_REQUIRED = ("monitor", "best")  # what ranking a run needs
SWEEP_FIX = "run the same `dlsem sweep` (or `dlsem zoo`) command again to rewrite it, or delete the directory"


def corrupt(path: Path, reason: str, fix: str) -> DataError:
    return DataError(f"{path} is corrupt ({reason}); {fix}")


def run_fix(run_dir: Path) -> str:
    """What rewrites a run's summary.json and metrics.csv: a resume from its last.pt (a finished run's
    only writes them again)."""
    last = Path(run_dir) / "last.pt"
    if last.is_file():
        return f"`dlsem train --resume {last}` writes it again, or delete the run"
    return "delete the run (it has no last.pt to resume from)"


def read_text(path: Path, fix: str) -> str | None:
    """A text file's content; None when it does not exist; binary bytes are corruption."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise corrupt(path, "a directory where a file belongs", fix) from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        if b"\x00" in data:
            raise ValueError
        return data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise corrupt(path, "binary bytes, not text", fix) from None


def read_json(path: Path, fix: str) -> dict | None:
    """A JSON object ({...}); None when the file does not exist."""
    text = read_text(path, fix)
    if text is None:
        return None
    if not text.strip():
        raise corrupt(path, "empty", fix)
    try:
        obj = json.loads(text)
    except ValueError as e:  # JSONDecodeError; also nesting too deep for the parser
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise corrupt(path, f"not valid JSON{where}", fix) from None
    except RecursionError:
        raise corrupt(path, "JSON nested too deeply", fix) from None
    if not isinstance(obj, dict):
        raise corrupt(path, f"a JSON {_json_type(obj)} where an object {{...}} belongs", fix)
    return obj


def _json_type(v) -> str:
    return {list: "list", str: "string", bool: "true/false", type(None): "null"}.get(type(v), "number")


def read_summary(run_dir: Path) -> RunSummary | None:
    """summary.json with every key a reader uses of the type dlsem train writes; None when there is none."""
    path, fix = Path(run_dir) / "summary.json", run_fix(run_dir)
    s = read_json(path, fix)
    if s is None:
        return None
    for key in SUMMARY_REQUIRED:
        if key not in s:
            raise corrupt(path, f"no {key!r}", fix)
    for key, kind in SUMMARY_TYPES.items():
        if key in s and (not isinstance(s[key], kind) or (kind is int and isinstance(s[key], bool))):
            raise corrupt(path, f"{key!r} is {_json_type(s[key])} {_short(s[key])}", fix)
    for key in ("best", "test"):
        bad = next((k for k, v in s[key].items() if not isinstance(v, NUMBER) or isinstance(v, bool)), None) \
            if key in s else None
        if bad is not None:
            raise corrupt(path, f"{key}[{bad!r}] is not a number", fix)
    summary = RunSummary.from_dict(s)
    if summary.mode not in (None, "min", "max"):  # None: written before runs recorded it
        raise corrupt(path, f"mode {_short(summary.mode)} is neither min nor max", fix)
    d = summary.test_details
    if d is not None and not (isinstance(d.get("columns"), list) and isinstance(d.get("rows"), list)
                              and all(isinstance(r, list) for r in d["rows"])):
        raise corrupt(path, "'test_details' is not a table of columns and rows", fix)
    return summary


def _short(v) -> str:
    text = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else str(v)
    return text if len(text) <= 30 else text[:27] + "..."


def read_config(run_dir: Path) -> dict | None:
    """config.yaml as a nested dict; None when there is none."""
    # a resume rewrites config.yaml only once it trains on: a run without one is still reported and compared
    path = Path(run_dir) / "config.yaml"
    fix = "delete it to report the run without it (its checkpoints keep their own config), or delete the run"
    text = read_text(path, fix)
    if text is None:
        return None
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise corrupt(path, "not valid YAML" + (f" at line {mark.line + 1}" if mark else ""), fix) from None
    if not isinstance(cfg, dict):
        raise corrupt(path, "empty" if cfg is None else "not a mapping of settings", fix)
    bad = next((k for k, v in cfg.items() if k in ("model", "data", "train", "optim", "loss", "sched", "early_stop",
                                                   "logging", "checkpoint") and not isinstance(v, dict)), None)
    if bad:
        raise corrupt(path, f"section {bad!r} is not a mapping", fix)
    return cfg


def read_table(path: Path, fix: str) -> tuple[list[str], list[list[str]]] | None:
    """A CSV written by dlsem: header and rows as text, every row as long as the header; None when missing.
    An empty file has no header: ([], [])."""
    text = read_text(path, fix)
    if text is None:
        return None
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]  # blank lines carry nothing
    except csv.Error as e:
        raise corrupt(path, f"not a CSV table: {e}", fix) from None
    if not rows:
        return [], []
    header = rows[0]
    if len(set(header)) != len(header) or not all(h.strip() for h in header):
        raise corrupt(path, "its first line is not a header of distinct column names", fix)
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(header):
            raise corrupt(path, f"row {i} has {len(r)} cells but the header has {len(header)}", fix)
    return header, rows[1:]


def read_metrics(run_dir: Path, summary: RunSummary | None = None) -> tuple[list[str], list[list[str]]] | None:
    """metrics.csv: an `epoch` column of whole numbers, every other cell a number or empty; None when missing.
    An empty file (a first write that failed, a full disk) holds no epoch: ([], []), unless the run's
    `summary` says epochs ran."""
    path, fix = Path(run_dir) / "metrics.csv", run_fix(run_dir)
    table = read_table(path, fix)
    ran = (summary.epochs_run if summary is not None else None) or 0
    if table is not None and not table[1] and ran > 0:
        raise corrupt(path, f"{'empty' if not table[0] else 'no rows'}, but summary.json says {ran} epochs ran", fix)
    if not table or not table[0]:
        return table
    header, rows = table
    if "epoch" not in header:
        raise corrupt(path, "no 'epoch' column in its header", fix)
    for i, r in enumerate(rows, 2):
        for h, cell in zip(header, r):
            if h == "epoch" and not cell.strip().isdigit():
                raise corrupt(path, f"row {i}: epoch {cell[:20]!r} is not a whole number", fix)
            if cell and not _is_number(cell):
                raise corrupt(path, f"row {i}, column {h!r}: {cell[:20]!r} is not a number", fix)
    return header, rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def read_sweep_record(folder: Path) -> dict | None:
    """sweep.json: its members (plain directory names inside the sweep), grid and --set items; None when missing."""
    path = Path(folder) / "sweep.json"
    rec = read_json(path, SWEEP_FIX)
    if rec is None:
        return None
    members = rec.get("members")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise corrupt(path, "'members' is not a list of runs", SWEEP_FIX)
    for m in members:
        name = m.get("name")
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
            raise corrupt(path, f"member name {_short(name)} is not a directory name", SWEEP_FIX)
        settings = m.get("settings", {})
        if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
            raise corrupt(path, f"the settings of member {name!r} are not a mapping of key to text", SWEEP_FIX)
        if not isinstance(m.get("error") or "", str):
            raise corrupt(path, f"the error of member {name!r} is not text", SWEEP_FIX)
    grid = rec.get("grid")
    if not isinstance(grid, list) or not all(isinstance(g, list) and len(g) == 2 and isinstance(g[0], str)
                                             and isinstance(g[1], list) for g in grid):
        raise corrupt(path, "'grid' is not a list of [key, values]", SWEEP_FIX)
    if not isinstance(rec.get("sets", []), list) or not isinstance(rec.get("config"), (str, type(None))):
        raise corrupt(path, "'sets' or 'config' is of the wrong type", SWEEP_FIX)
    return rec
