"""`dlsem report`: one self-contained HTML page for a run directory or a sweep/compare directory.

The page opens offline and escapes every text that comes from a run: htmlpage.py holds those rules
and the pieces (tables, figures, the page itself); this module reads the runs and lays them out.

A run page: what ran and how it ended (with the diagnosis line of its curves), the headline metrics,
every file of plots/, the per-class table, a health summary, the per-epoch table of metrics.csv and
the full config. A sweep or compare page: the ranked table of its CSV with the members' diagnosis
lines under it, its plots, then one collapsible <details> per member run with its diagnosis,
headline metrics and plots.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import io, runfiles
from .compare import setting_text
from .errors import ConfigError, UserError
from .htmlpage import esc, figures, fmt, note, page, parse, table, td
from .ranked import diagnosis_of
from .summary import RunSummary

RUN_MARKERS = ("summary.json", "metrics.csv", "config.yaml")  # what compare.expand takes for a run directory
STATUSES = ("finished", "diverged", "failed", "interrupted", "unfinished")  # compare.run_row's; used as CSS classes


def write_report(path: Path, out: Path | None = None, overwrite: bool = False) -> Path:
    """Write the report of `path` (a run, sweep or compare directory) to `out` (default PATH/report.html).

    PATH/report.html is the report's own file, rewritten on every run. Any other existing --out is
    replaced only with `overwrite`, and never when it is a run's own file (config.yaml, last.pt, ...)
    or a file inside the directory being reported (what the page is made of)."""
    path = Path(path)
    kind = classify(path)
    default = path / "report.html"
    target = Path(out) if out is not None else default
    if target.is_dir():
        raise ConfigError(f"--out {str(target)!r} is a directory; give a file name such as {str(target / 'report.html')!r}")
    own = target == default or (target.exists() and default.exists() and io.same_path(target, default))
    io.check_file(target, overwrite=overwrite, own=own, inputs=[(path, "inside the directory being reported")],
                  what=f"the report to {str(target)!r}")  # before the page is built: a refusal costs nothing
    page = run_page(path) if kind == "run" else group_page(path, kind)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        io.write_text(target, page)  # a reader never sees half a page
    except OSError as e:
        raise UserError(f"cannot write the report to {str(target)!r}: {e.strerror or e}") from None
    return target


def classify(path: Path) -> str:
    """'sweep' (sweep.json), 'compare' (compare.csv) or 'run' (config.yaml, metrics.csv or summary.json)."""
    if not path.exists():
        raise ConfigError(f"{str(path)!r} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{str(path)!r} is not a directory; give a run, sweep or compare directory")
    if (path / "sweep.json").is_file():  # read (strictly) by group_page: a damaged one is named there
        return "sweep"
    if (path / "compare.csv").is_file():
        return "compare"
    if any((path / m).is_file() for m in RUN_MARKERS):
        return "run"
    raise ConfigError(f"{str(path)!r} is neither a run directory (no config.yaml, metrics.csv or summary.json) "
                      f"nor a sweep or compare directory (no sweep.json or compare.csv)")


# ---------------------------------------------------------------- a run directory
def read_csv(file: Path, fix: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (text, as written) of a CSV dlsem wrote; empty when missing; a damaged one is a DataError
    (`fix`: what rewrites it)."""
    return runfiles.read_table(file, fix) or ([], [])


def numbers(rows: list[list[str]]) -> list[list]:
    """CSV rows for display: cells that are numbers formatted as numbers."""
    return [[parse(c) for c in r] for r in rows]


def read_config(run_dir: Path) -> dict | None:
    """config.yaml; None when missing, a DataError when damaged."""
    return runfiles.read_config(run_dir)


def flatten(d: dict, prefix: str = ""):
    """Nested config sections as dotted keys (the form `--set` and `dlsem config show` use)."""
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def facts(s: RunSummary) -> str:
    """What ran and how it ended, as a two-column table."""
    restored = s.restored_best
    items = [("model", s.model), ("dataset", s.dataset), ("task", s.task),
             ("device", s.device), ("parameters", f"{s.params:,}" if isinstance(s.params, int) else None),
             ("optimizer", s.optimizer), ("loss", s.loss), ("stop reason", s.stop_reason),
             ("epochs run", s.epochs_run), ("best epoch", s.best_epoch),
             ("monitor", f"{s.monitor} ({s.mode})" if s.monitor else None),
             ("best weights restored", None if restored is None else ("yes" if restored else "no")),
             ("seconds", s.seconds)]
    rows = "".join(f'<tr><th class="text">{esc(k)}</th>{td(v)}</tr>' for k, v in items if v is not None)
    return f"<table>{rows}</table>" if rows else ""


def headline(s: RunSummary) -> str:
    """Best-epoch validation metrics beside their test counterparts, one row per metric."""
    best, test = s.best, s.test
    names = list(dict.fromkeys([k.split("/", 1)[-1] for k in best] + [k.split("/", 1)[-1] for k in test]))
    if not names:
        return note("no metrics (no summary.json, or the run stopped before its first epoch ended)")
    rows = [[n, best.get(f"val/{n}", ""), test.get(f"test/{n}", "")] for n in names]
    return table(["metric", f"val (best epoch {'?' if s.best_epoch is None else s.best_epoch})", "test"], rows)


def diagnosis(s: RunSummary) -> str:
    """The run's diagnosis line (diagnosis.py: what its curves show, and what to try); "" for a summary
    written before runs were diagnosed."""
    line = diagnosis_of(s)[1]
    return f'<p class="diagnosis"><b>Diagnosis</b>: {esc(line)}</p>' if line else ""


def per_class(s: RunSummary) -> str:
    d = s.test_details
    if not isinstance(d, dict) or not d.get("columns"):
        return ""
    # three decimals like `dlsem eval`: precision/recall/F1 are compared across classes
    three = lambda v: f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else fmt(v)  # noqa: E731
    return (f'<h2 id="per-class">Per class (test split, {esc(s.test_checkpoint or "")})</h2>'
            + table(list(d["columns"]), [list(r) for r in d.get("rows", [])], three, scroll=True))


def health(s: RunSummary) -> str:
    """summary.json's health as two short tables (the picture is plots/health.png)."""
    h = s.health
    if not h:
        return ""
    out = ['<h2 id="health">Health</h2>',
           note("gradient norm (mean over each epoch's steps), share of near-zero weights "
                f"(|w| < {h.get('threshold', '?')}) and dead ReLU units (on {h.get('probe_samples', '?')} "
                "training samples); the full picture is plots/health.png above")]
    try:  # health.py is an observer that may grow; a shape this code does not know only loses the tables
        epochs = h["epochs"]
        first, last = epochs[0], epochs[-1]
        rows = [[layer, h["grad_norm"][layer][0], h["grad_norm"][layer][-1], h["near_zero"][layer][-1]]
                for layer in h["layers"]]
        out.append(table(["layer", f"grad norm, epoch {first}", f"grad norm, epoch {last}",
                          f"near-zero weights, epoch {last}"], rows))
        ratio = h.get("first_to_last_grad") or []
        if ratio:
            out.append(note(f"last layer's gradient / first layer's: {fmt(ratio[0])} (epoch {first}), "
                            f"{fmt(ratio[-1])} (epoch {last})"))
        if h.get("relu_layers"):
            out.append(table(["ReLU", f"dead units, epoch {first}", f"dead units, epoch {last}"],
                             [[r, h["dead_relu"][r][0], h["dead_relu"][r][-1]] for r in h["relu_layers"]]))
    except (KeyError, IndexError, TypeError):
        out.append(note("(health summary in a form this report does not know; see plots/health.png)"))
    return "\n".join(out)


def run_page(run_dir: Path) -> str:
    found = runfiles.read_summary(run_dir)  # a damaged file is one error line naming it, not a half page
    s = found if found is not None else RunSummary()
    cfg = read_config(run_dir)
    header, rows = runfiles.read_metrics(run_dir, found) or ([], [])
    name = s.name or (cfg or {}).get("name") or run_dir.name
    classes, checks = per_class(s), health(s)
    sections = [("metrics", "metrics"), ("plots", "plots"), *([("per-class", "per class")] if classes else []),
                *([("health", "health")] if checks else []), ("epochs", "epochs"), ("config", "config")]
    body = [f"<h1>{esc(name)}</h1>", note(f"run directory {run_dir}"),
            "<nav>" + "".join(f'<a href="#{i}">{t}</a>' for i, t in sections) + "</nav>"]
    if found is None:
        body.append(note("no summary.json: the run has not finished (or was interrupted)"))
    body += ['<h2 id="metrics">Metrics</h2>', diagnosis(s), f'<div class="row">{facts(s)}{headline(s)}</div>',
             '<h2 id="plots">Plots</h2>', figures(run_dir / "plots", anchor="plot-"), classes, checks]
    body.append(f'<h2 id="epochs">Per epoch ({len(rows)} rows of metrics.csv)</h2>')
    empty = "metrics.csv is empty: no epoch was recorded" if (run_dir / "metrics.csv").is_file() else "no metrics.csv"
    body.append(table(header, numbers(rows), scroll=True) if header else note(empty))
    body.append('<h2 id="config">Config</h2>')
    body.append(table(["key", "value"], [[k, setting_text(v)] for k, v in flatten(cfg)]) if cfg is not None
                else note("no config.yaml"))
    return page(f"{name} — dlsem report", body)


# ---------------------------------------------------------------- a sweep or compare directory
def member_dir(folder: Path, row: dict) -> Path | None:
    """A ranked row's run directory: a sweep's member under the sweep (also after the sweep was moved),
    else the CSV's `dir` as written (relative to where `dlsem compare` ran, like this command)."""
    candidates = [folder / row["run"]] if row.get("run") else []
    candidates += [Path(row["dir"])] if row.get("dir") else []
    return next((d for d in candidates if d.is_dir() and any((d / m).is_file() for m in RUN_MARKERS)), None)


def status_class(column: str, value) -> str:
    return f"status-{value}" if column == "status" and value in STATUSES else ""


def read_member(folder: Path, row: dict) -> tuple[Path | None, RunSummary | None, str]:
    """A ranked row's run directory (None: not found), its summary (None: damaged) and what is damaged
    (one damaged member does not cost the page: its section says what is wrong there)."""
    d = member_dir(folder, row)
    if d is None:
        return None, None, ""
    try:
        return d, runfiles.read_summary(d) or RunSummary(), ""
    except UserError as e:
        return d, None, str(e)


def diagnoses(members: list[tuple[dict, Path | None, RunSummary | None, str]]) -> str:
    """The members' diagnosis lines, in rank order ("" when none has one)."""
    items = [f"<li><b>#{esc(row.get('rank', '?'))} {esc(row.get('run', ''))}</b>: {esc(line)}</li>"
             for row, _, s, _ in members if (line := diagnosis_of(s)[1])]
    return f'<ul class="diagnosis">{"".join(items)}</ul>' if items else ""


def member(row: dict, d: Path | None, s: RunSummary | None, damaged: str, monitor: str) -> str:
    """One collapsible section: the member's diagnosis, headline metrics and plots."""
    best = parse(row.get("best") or "")
    title = f"#{row.get('rank', '?')} {row.get('run', '')}: {row.get('status', '')}"
    if isinstance(best, (int, float)):
        title += f", {monitor} {fmt(best)}"
    parts = [f"<details><summary>{esc(title)}</summary>"]
    if row.get("error"):
        parts.append(note(f"error: {row['error']}"))
    if d is None:
        parts.append(note(f"run directory {row.get('dir', '')} not found"))
    else:
        if damaged:
            parts.append(f'<p class="status-failed">damaged: {esc(damaged)}</p>')
        parts += [note(f"run directory {d}"),
                  *([diagnosis(s), f'<div class="row">{facts(s)}{headline(s)}</div>'] if s is not None else []),
                  figures(d / "plots")]
    parts.append("</details>")
    return "\n".join(parts)


def group_page(folder: Path, kind: str) -> str:
    csv_name = "sweep.csv" if kind == "sweep" else "compare.csv"
    fix = f"`dlsem compare {folder}` writes it again"
    header, rows = read_csv(folder / csv_name, fix)
    if not header:
        raise ConfigError(f"{str(folder)!r} holds no readable {csv_name} (a sweep writes it when all members have run); "
                          f"`dlsem compare {folder}` writes it from the members there are")
    records = [dict(zip(header, r)) for r in rows]  # as written: run names must match their directories
    monitor = next((r["monitor"] for r in records if r.get("monitor")), "monitor")
    body = [f"<h1>{esc(kind)} {esc(folder.name)}</h1>", note(f"{kind} directory {folder}")]
    record = runfiles.read_sweep_record(folder) if kind == "sweep" else None
    if record:  # what was swept: recipe, --set items, grid
        grid = "  ".join(f"--grid {k}={','.join(map(str, v))}" for k, v in record.get("grid", []))
        sets = "  ".join(f"--set {s}" for s in record.get("sets", []))
        body.append(f"<p><code>dlsem sweep {esc(record.get('config') or '(default config)')} {esc(grid)} "
                    f"{esc(sets)}</code></p>")
    zoo_header, zoo_rows = read_csv(folder / "zoo.csv", runfiles.SWEEP_FIX)  # a `dlsem zoo` directory: its own table first
    if zoo_header:
        body += ["<h2>Zoo (zoo.csv)</h2>", table(zoo_header, numbers(zoo_rows), classes=status_class, scroll=True)]
    members = [(r, *read_member(folder, r)) for r in records]
    body += [f"<h2>Ranked ({esc(csv_name)}, by {esc(monitor)})</h2>",
             table(header, numbers(rows), classes=status_class, scroll=True), diagnoses(members),
             "<h2>Plots</h2>", figures(folder / "plots", anchor="plot-"),
             f"<h2>Members ({len(records)})</h2>", *[member(*m, monitor) for m in members]]
    return page(f"{kind} {folder.name} — dlsem report", body)
