"""`dlsem report`: one self-contained HTML page for a run directory or a sweep/compare directory.

The page must open offline, mailed or copied anywhere: no external URL of any kind, images as
data: URIs, CSS inline, no JavaScript (a Content-Security-Policy meta tag makes the browser refuse
anything else, so a slip shows up as a console error instead of a silent network request). Every
text that comes from a run (names, config values, class names, file names, error lines) is
HTML-escaped: they are typed by users.

A run page: what ran and how it ended, the headline metrics, every file of plots/, the per-class
table, a health summary, the per-epoch table of metrics.csv and the full config. A sweep or compare
page: the ranked table of its CSV, its plots, then one collapsible <details> per member run with
its headline metrics and plots.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from . import runfiles
from .compare import setting_text
from . import io
from .errors import ConfigError, UserError
from .summary import RunSummary

# What a browser shows in <img>; anything else in plots/ is listed by name only.
IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".svg": "image/svg+xml"}
RUN_MARKERS = ("summary.json", "metrics.csv", "config.yaml")  # what compare.expand takes for a run directory
STATUSES = ("finished", "diverged", "failed", "interrupted", "unfinished")  # compare.run_row's; used as CSS classes

# Only inline styles and data: images may load; a stray external reference becomes a console error.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; overflow-wrap: anywhere; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .5em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; white-space: nowrap; }
td.text, th.text { text-align: left; overflow-wrap: break-word; }
.row { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
.scroll { overflow-x: auto; max-height: 36em; overflow-y: auto; }
.scroll th { position: sticky; top: 0; }
.scroll td { white-space: nowrap; }  /* long cells (stop reasons, paths) scroll sideways instead of making rows tall */
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-family: monospace; color: #555; }
details { border: 1px solid #ddd; border-radius: 4px; margin: .5em 0; padding: .3em .8em; }
summary { cursor: pointer; font-weight: 600; }
.note { color: #666; }
.status-finished { color: #1a7f37; } .status-diverged, .status-failed { color: #c62828; font-weight: 600; }
.status-interrupted, .status-unfinished { color: #9a6700; }
"""


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


# ---------------------------------------------------------------- small HTML pieces
def esc(v) -> str:
    return html.escape(str(v), quote=True)


def page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", *body, "</body>", "</html>", ""])


def fmt(v) -> str:
    """A number as a reader wants it: ints whole, floats to 4 significant digits, nan/inf spelled."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan" if v != v else ("inf" if v > 0 else "-inf")
        return f"{v:.4g}"
    return str(v)


def parse(cell: str):
    """A CSV cell back to int or float where it is one (so it can be formatted), else the text. Python would
    also read '1_000' and ' 5' as numbers: such cells are text a user typed (a run name), kept as written."""
    if "_" in cell or cell != cell.strip():
        return cell
    for kind in (int, float):
        try:
            return kind(cell)
        except (TypeError, ValueError):
            pass
    return cell


def td(v, fmt_=fmt, cls: str = "") -> str:
    """A cell: numbers right-aligned with their full value as a tooltip, text left-aligned."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        shown = fmt_(v)
        title = f' title="{esc(repr(v))}"' if shown != str(v) else ""
        attr = f' class="{esc(cls)}"' if cls else ""
        return f"<td{title}{attr}>{esc(shown)}</td>"
    return f'<td class="{esc(("text " + cls).strip())}">{esc(fmt(v))}</td>'


def table(header: list, rows: list[list], fmt_=fmt, classes=None, scroll: bool = False) -> str:
    """An HTML table; classes(column, value) may give a cell a CSS class (a status colour)."""
    head = "".join(f'<th class="text">{esc(h)}</th>' for h in header)
    body = []
    for r in rows:
        cells = [td(v, fmt_, (classes(h, v) if classes else "")) for h, v in zip(header, r)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    t = f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    return f'<div class="scroll">{t}</div>' if scroll else t


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def data_uri(file: Path) -> str:
    return f"data:{IMAGE_TYPES[file.suffix.lower()]};base64," + base64.b64encode(file.read_bytes()).decode("ascii")


def plot_files(folder: Path) -> list[Path]:
    """Every file of plots/, sorted by name (hidden ones are another writer's temporary files)."""
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")), key=lambda f: f.name)


def figures(folder: Path, anchor: str = "") -> str:
    """Each image of `folder` embedded with its file name as caption; other files named only."""
    files = plot_files(folder)
    if not files:
        return note(f"no plots in {folder.name}/")
    out, others = [], []
    for f in files:
        if f.suffix.lower() not in IMAGE_TYPES:
            others.append(f.name)
            continue
        fid = f' id="{esc(anchor + f.name)}"' if anchor else ""
        out.append(f'<figure{fid}><img src="{data_uri(f)}" alt="{esc(f.name)}">'
                   f"<figcaption>{esc(f.name)}</figcaption></figure>")
    if others:
        out.append(note("also in plots/ (not images): " + ", ".join(others)))
    return "\n".join(out)


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
    body += ['<h2 id="metrics">Metrics</h2>', f'<div class="row">{facts(s)}{headline(s)}</div>',
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


def member(folder: Path, row: dict, monitor: str) -> str:
    """One collapsible section: the member's headline metrics and its plots."""
    best = parse(row.get("best") or "")
    title = f"#{row.get('rank', '?')} {row.get('run', '')}: {row.get('status', '')}"
    if isinstance(best, (int, float)):
        title += f", {monitor} {fmt(best)}"
    parts = [f"<details><summary>{esc(title)}</summary>"]
    if row.get("error"):
        parts.append(note(f"error: {row['error']}"))
    d = member_dir(folder, row)
    if d is None:
        parts.append(note(f"run directory {row.get('dir', '')} not found"))
    else:
        try:
            s = runfiles.read_summary(d) or RunSummary()
        except UserError as e:  # one damaged member does not cost the page: it says what is wrong there
            parts.append(f'<p class="status-failed">damaged: {esc(e)}</p>')
            s = None
        parts += [note(f"run directory {d}"), *([f'<div class="row">{facts(s)}{headline(s)}</div>'] if s is not None else []),
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
    body += [f"<h2>Ranked ({esc(csv_name)}, by {esc(monitor)})</h2>",
             table(header, numbers(rows), classes=status_class, scroll=True),
             "<h2>Plots</h2>", figures(folder / "plots", anchor="plot-"),
             f"<h2>Members ({len(records)})</h2>", *[member(folder, r, monitor) for r in records]]
    return page(f"{kind} {folder.name} — dlsem report", body)
