"""The pieces of a self-contained HTML page, as `dlsem report` writes it.

The page must open offline, mailed or copied anywhere: no external URL of any kind, images as
data: URIs, CSS inline, no JavaScript (a Content-Security-Policy meta tag makes the browser refuse
anything else, so a slip shows up as a console error instead of a silent network request). Every
text that comes from a run (names, config values, class names, file names, error lines) goes
through esc() (td, table and note do it): they are typed by users.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

# What a browser shows in <img>; anything else in plots/ is listed by name only.
IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".svg": "image/svg+xml"}

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
.diagnosis { background: #f6f8fa; border-left: 4px solid #0969da; padding: .4em .8em; margin: .6em 0; }
ul.diagnosis { list-style: none; } ul.diagnosis li { margin: .2em 0; }
.status-finished { color: #1a7f37; } .status-diverged, .status-failed { color: #c62828; font-weight: 600; }
.status-interrupted, .status-unfinished { color: #9a6700; }
"""


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
