"""plots/compare.png of `dlsem compare` and `sweep`: several runs' learning curves overlaid.

A grid reads as a grid: the colour says the value of the first setting that differs (a sweep's first
--grid key), the line style the second, the marker a third, so a 4 x 3 optimizer x lr sweep is 4
colours in 3 styles rather than 12 unrelated colours, and the legend lists the 4 + 3 values. Each
curve has its own panel (the metric, validation loss, training loss) so that the line style is
free to mean a setting. The loss axes are scaled to the runs that did not diverge; a diverged run's
loss is drawn up to the top edge, where it leaves the chart, with an arrow marked "diverged".
"""
from __future__ import annotations

import math
from pathlib import Path

from .figure import pyplot, save

LOSSES = ("val/loss", "train/loss")
DASHES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 3)), (0, (5, 2, 1, 2, 1, 2)), (0, (8, 3, 2, 3))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
RUNAWAY = 10  # a training loss ending this many times above its lowest has diverged
PER_STEP = "train/loss per step"  # the panel of runs with a steps.csv (logging.steps)


def styles(settings: list[dict], keys: list[str]) -> list[dict]:
    """One line style per run: {"color": i, "dash": j, "marker": m} indices, from the run's values of
    keys[0], keys[1] and keys[2], numbered in sorted order (numbers by value, other text
    alphabetically: the same grid gets the same colours whatever the ranking; a run lacking a key has
    the value ""). Without keys every run gets its own colour."""
    if not keys:
        return [{"color": i, "dash": 0, "marker": None} for i in range(len(settings))]
    index = [{v: i for i, v in enumerate(sorted({s.get(k, "") for s in settings}, key=_order))} for k in keys[:3]]
    out = []
    for s in settings:
        idx = [index[j][s.get(k, "")] for j, k in enumerate(keys[:3])]
        out.append({"color": idx[0], "dash": idx[1] if len(idx) > 1 else 0, "marker": idx[2] if len(idx) > 2 else None})
    return out


def _order(value: str) -> tuple:
    """Sort key of a setting's text: numbers first, by value ("1e-3" < "0.01" < "1"), then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def panels(monitor: str, main: str | None) -> list[str]:
    """The curves compare.png shows, one panel each: the task's main metric (when the monitor is another
    one, a loss), the monitored metric unless it is a loss, then the validation and training loss."""
    metrics = [m for m in (main, monitor) if m and m not in LOSSES]
    return list(dict.fromkeys(metrics)) + list(LOSSES)


def compare(path: Path, runs: list[dict], monitor: str, keys: list[str] = (), main: str | None = None) -> None:
    """Learning curves of several runs overlaid. runs: [{"label", "history": [row, ...], "status",
    "settings": {key: value text}, "dir": run directory}] ("settings" and "dir" optional: a run
    directory with a steps.csv adds a panel of the training loss per step); keys: the settings that
    differ, the grid's keys first (colour, line style, marker); main: the task's main metric when the
    monitor is another one. The loss axes are scaled to the runs that did not diverge."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in keys if any(k in (r.get("settings") or {}) for r in runs)]
    look = styles([r.get("settings") or {} for r in runs], keys)
    ncolors = max((s["color"] for s in look), default=0) + 1
    cmap = plt.get_cmap("tab10" if ncolors <= 10 else "tab20")
    shown = [k for k in panels(monitor, main) if any(k in row for r in runs for row in r["history"])]
    steps = [_read_steps(r) for r in runs]
    if any(steps):
        shown.append(PER_STEP)
    fig, axes = plt.subplots(1, len(shown) or 1, figsize=(5 * (len(shown) or 1) + 2.5, 4.6), squeeze=False)
    many = max((len(r["history"]) for r in runs), default=0) > 30
    pad = 24 if any(ran_away(r) for r in runs) else 6  # room above the axes for "diverged" (every panel: titles in line)
    for ax, key in zip(axes[0], shown):
        if key == PER_STEP:
            _per_step(ax, steps, look, cmap)
            ax.set_title(key, pad=pad)
            continue
        lines = []
        for r, s in zip(runs, look):
            epochs = [row.get("epoch") for row in r["history"]]
            ys = [_number(row.get(key)) for row in r["history"]]
            marker = MARKERS[s["marker"] % len(MARKERS)] if s["marker"] is not None else (None if many else ".")
            line = dict(color=cmap(s["color"] % cmap.N), ls=DASHES[s["dash"] % len(DASHES)],
                        marker=marker, ms=4, lw=1.4)
            ax.plot(epochs, ys, **line)
            lines.append((r, epochs, ys, line))
        if key in LOSSES:
            _scale_losses(ax, lines)
            for r, epochs, ys, line in lines:
                if ran_away(r):
                    _run_away(ax, epochs, ys, line)
        ax.set_title(key + (" (monitored)" if key == monitor else ""), pad=pad)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = _legend(runs, keys, look, cmap, Line2D)
    room = (0.9 + 0.055 * max((len(h.get_label()) for h in handles), default=0)) / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, 1 - room, 1))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - room, 0.5), fontsize=7, frameon=False)
    save(fig, path)


def _read_steps(run: dict) -> list:
    """The run's steps.csv rows (logging.steps) when its directory ("dir") has one, else []."""
    from .steps import read_steps

    path = Path(run["dir"]) / "steps.csv" if run.get("dir") else None
    return read_steps(path) if path is not None and path.is_file() else []


def _per_step(ax, steps: list[list], look: list[dict], cmap) -> None:
    """Each run's training loss per optimizer step against the epoch (viz/steps.py draws it: every step
    pale, its running mean in the run's line style); the runs with most steps first, under the others."""
    from matplotlib.ticker import MaxNLocator

    from .steps import draw, scale

    losses = []
    for rows, s in sorted(zip(steps, look), key=lambda p: -len(p[0])):
        if rows:
            losses += draw(ax, rows, cmap(s["color"] % cmap.N), DASHES[s["dash"] % len(DASHES)])
    scale(ax, losses)
    ax.set_xlabel("epoch (pale: each step; bold: running mean)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _scale_losses(ax, lines) -> None:
    """y limits from the finite losses of the runs that did not run away (of all runs when every one did);
    log scale when they span more than a factor of 50."""
    calm = [y for r, _, ys, _ in lines if not ran_away(r) for y in ys if math.isfinite(y) and y > 0]
    calm = calm or [y for _, _, ys, _ in lines for y in ys if math.isfinite(y) and y > 0]
    if not calm:
        return
    lo, hi = min(calm), max(calm)
    if hi / lo > 50:
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.5, hi * 3)
    else:
        ax.set_ylim(max(0.0, lo - 0.1 * (hi - lo)), hi + 0.15 * (hi - lo) + 1e-12)


def ran_away(run: dict) -> bool:
    """A run whose training loss ran away: stopped as diverged, not finite, or ended more than RUNAWAY
    times above its lowest (a run at too high an lr may overflow to 1e23 without ever reaching inf)."""
    if run.get("status") == "diverged":
        return True
    ys = [_number(row["train/loss"]) for row in run["history"] if "train/loss" in row]
    finite = [y for y in ys if math.isfinite(y)]
    return len(finite) < len(ys) or (len(finite) > 1 and finite[-1] > RUNAWAY * min(finite))


def _run_away(ax, epochs: list, ys: list[float], line: dict) -> None:
    """A run-away loss leaving the chart: its curve up to the top edge where it first crosses it (a
    non-finite loss: straight up from the last finite point, at its epoch), an arrow and "diverged"."""
    bottom, top = ax.get_ylim()
    log = ax.get_yscale() == "log"
    for i, (e, y) in enumerate(zip(epochs, ys)):
        if math.isfinite(y) and y <= top:
            continue
        if i == 0 or not (math.isfinite(ys[i - 1]) and ys[i - 1] <= top):
            # no point on the chart before (diverged within its first epoch): an arrow from inside the
            # axes up through the top edge at that epoch says where it went, without inventing a curve
            ax.annotate("", xy=(e, 1.0), xycoords=("data", "axes fraction"), xytext=(e, 0.6),
                        textcoords=("data", "axes fraction"), annotation_clip=False,
                        arrowprops=dict(arrowstyle="-|>", color=line["color"], lw=1.4, ls=line["ls"]))
            x = e
        elif not math.isfinite(y):
            x = e
            ax.plot([epochs[i - 1], e], [ys[i - 1], top], **{**line, "marker": None}, clip_on=True)
        else:  # the drawn line leaves through the top edge: mark the point where it crosses
            f = (lambda v: math.log(max(v, 1e-300))) if log else (lambda v: v)
            x = epochs[i - 1] + (e - epochs[i - 1]) * (f(top) - f(ys[i - 1])) / (f(y) - f(ys[i - 1]))
        ax.annotate("diverged", xy=(x, top), xytext=(0, 14), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7, color=line["color"], annotation_clip=False,
                    arrowprops=dict(arrowstyle="<|-", color=line["color"], lw=1.2))
        return


def _legend(runs, keys, look, cmap, Line2D) -> list:
    """Colour entries (the first key's values), line-style entries (the second's), marker entries (the
    third's), and a line for each run that did not finish; without keys, one entry per run."""
    def entry(label, color="gray", dash=0, marker=None):
        return Line2D([], [], color=color, ls=DASHES[dash % len(DASHES)], marker=marker, ms=4, label=label)

    def status(r):
        return "" if r.get("status") in (None, "finished") else f" ({r['status']})"

    if not keys:
        return [entry(r["label"] + status(r), cmap(s["color"] % cmap.N), 0) for r, s in zip(runs, look)]
    handles = []
    for j, (k, part) in enumerate(zip(keys, ("color", "dash", "marker"))):
        handles.append(Line2D([], [], ls="none", label=k))  # a heading: the key
        values = {}
        for r, s in zip(runs, look):
            values.setdefault(s[part], (r.get("settings") or {}).get(k, "?"))
        for i, v in sorted(values.items()):
            handles.append(entry(f"  {v}", **{"color": cmap(i % cmap.N)} if j == 0 else
                                 {"dash": i} if j == 1 else {"marker": MARKERS[i % len(MARKERS)]}))
    odd = [(r, s) for r, s in zip(runs, look) if status(r)]
    if odd:
        handles.append(Line2D([], [], ls="none", label="status"))
        handles += [entry(f"  {r['label']}{status(r)}", cmap(s['color'] % cmap.N), s["dash"])
                    for r, s in odd]
    return handles
