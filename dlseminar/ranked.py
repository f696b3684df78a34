"""Ranked runs written out: the rich table `dlsem compare` and `dlsem sweep` print, their CSV, plots/compare.png.

The rows come from compare.collect (ranked, scored). Besides the monitor and its test counterpart, the
table and the CSV show the task's main metric when the monitor is another one (a classifier monitored
by val/loss still shows val/acc and test/acc: compare.main_metric), the share of near-zero weights
when the runs differ in a weight penalty (compare.add_near_zero), and each run's diagnosis
(diagnosis.py, in summary.json): its kind in the CSV, its line under the printed table.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from . import io
from .summary import RunSummary


def diagnosis_of(s: RunSummary | None) -> tuple[str, str]:
    """(kind, line) of a run's diagnosis; empty strings for a summary written before runs were diagnosed
    (or a hand-edited one whose diagnosis holds something else)."""
    d = s.diagnosis if s is not None else None
    if not isinstance(d, dict):
        return "", ""
    kind, line = d.get("kind"), d.get("line")
    return (kind if isinstance(kind, str) else ""), (line if isinstance(line, str) else "")


def write_outputs(folder: Path, rows: list[dict], csv_name: str, keys: list[str]) -> None:
    """<folder>/<csv_name> and <folder>/plots/compare.png."""
    from .viz.compare import compare as draw

    (folder / "plots").mkdir(parents=True, exist_ok=True)
    tests = sorted({k for r in rows for k in (r.get("summary") or RunSummary()).test})
    main = rows[0].get("main") if rows else None
    shares = any("near_zero" in r for r in rows)
    header = ["rank", "run", "status", *keys, "monitor", "mode", "best", *([main] if main else []), "kept_epoch",
              "epochs_run", *tests, *(["near_zero_weights"] if shares else []), "diagnosis", "seconds", "stop_reason",
              "error", "dir"]
    with io.atomic_open(folder / csv_name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            s = r.get("summary") or RunSummary()
            w.writerow([r["rank"], r["run"], r["status"], *[r["settings"].get(k, "") for k in keys], r["monitor"] or "",
                        r["mode"], _cell(r["best"]), *([_cell(r["main_best"])] if main else []), r.get("epoch"),
                        s.epochs_run, *[_cell(s.test.get(k)) for k in tests],
                        *([_cell(r.get("near_zero"))] if shares else []), diagnosis_of(s)[0], s.seconds,
                        r.get("stop_reason", ""), r["error"], r["dir"]])
    runs = [{"label": r["run"], "history": r["history"], "status": r["status"], "settings": r["settings"],
             "dir": r["dir"]} for r in rows]
    draw(folder / "plots" / "compare.png", runs, rows[0]["monitor"] or "val/loss", keys=keys, main=main)


def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else v


def table(rows: list[dict], keys: list[str], title: str = "", names: bool = True):
    """The ranked rich Table, and under it one line per diagnosed run ("#1 run: overfitting since epoch 12:
    ... -> try ...") that would not fit in a column (names: a run column; a sweep's settings columns name
    its members already). A rich Group: print it as one."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    monitor = rows[0]["monitor"] if rows else None
    metric = monitor.split("/", 1)[-1] if monitor else "-"
    arrow = "↑" if rows and rows[0]["mode"] == "max" else "↓"
    main = rows[0].get("main") if rows else None
    shares = any("near_zero" in r for r in rows)
    zero = []
    if shares:
        from .health import THRESHOLD  # the near-zero threshold of the health observer's numbers too

        zero = [f"|w|<{THRESHOLD:.0e}".replace("e-0", "e-")]  # "|w|<1e-3"
    notes = [_note(r) for r in rows]
    t = Table("#", *(["run"] if names or not keys else []), "status", *keys, f"{monitor or 'monitor'} {arrow}",
              f"test/{metric}", *([main, f"test/{main.split('/', 1)[-1]}"] if main else []), *zero,
              "kept epoch", "seconds", *(["note"] if any(notes) else []), title=title or None)
    for r, note in zip(rows, notes):
        s = r.get("summary")
        t.add_row(str(r["rank"]), *([escape(r["run"])] if names or not keys else []), status_markup(r["status"]),
                  *[escape(r["settings"].get(k, "")) for k in keys], _num(r["best"]), _num(r["test"]),
                  *([_num(r["main_best"]), _num(r["main_test"])] if main else []),
                  *([_share(r.get("near_zero"))] if shares else []),
                  f"{r.get('epoch')}/{s.epochs_run}" if s is not None else "",  # "12/30": epoch 12's weights, of 30 run
                  f"{s.seconds:.3g}" if s is not None and s.seconds is not None else "",
                  *([escape(note[:70])] if any(notes) else []))
    # the lines start with their verdict ("overfitting since epoch 12", "good fit: ..."): no column for the kind
    # (nor an empty note column, nor one for the epochs run) to leave the metrics room in a 100-column terminal
    lines = [Text(f"#{r['rank']} {r['run']}: {line}") for r in rows if (line := diagnosis_of(r.get("summary"))[1])]
    return Group(t, *lines)


def _note(r: dict) -> str:
    """What went wrong: a failed or interrupted run's error, a diverged run's reason ("" for the others)."""
    if r["status"] in ("failed", "interrupted"):
        return r["error"]
    return (r.get("stop_reason") or "").split(":")[0] if r["status"] == "diverged" else ""


def status_markup(status: str) -> str:
    """A run's status in rich markup: failures in red, anything unfinished in yellow."""
    return {"finished": "finished", "diverged": "[bold red]diverged[/]", "failed": "[bold red]failed[/]"}.get(
        status, f"[yellow]{status}[/]")


def _share(v) -> str:
    return f"{v:.1%}" if isinstance(v, float) and math.isfinite(v) else ""


def _num(v) -> str:
    if not isinstance(v, float):
        return str(v)
    if not math.isfinite(v):
        return "nan" if v != v else str(v)
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3g}"
