"""plots/steps.png (logging.steps): the training loss of every optimizer step, from RUN/steps.csv.

The per-epoch curves average a whole epoch's steps into one point, so plain SGD on single samples
and batch gradient descent look alike there; per step, the first is a noisy band around a falling
trend and the second one smooth line. The raw steps are drawn thin, their running mean over a
window of steps bold, against the epoch (fractional: step k of an epoch of n sits at epoch - 1 + k/n)
so that the x-axis reads as curves.png's.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .figure import pyplot, save

LOG_SPAN = 30  # losses spanning more than this factor get a log y-axis


def read_steps(path: Path) -> list[tuple[int, int, float]]:
    """(step, epoch, train/loss) rows of a steps.csv; rows that do not parse are left out."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                rows.append((int(r["step"]), int(r["epoch"]), float(r["train/loss"])))
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def positions(rows: list[tuple[int, int, float]]) -> list[float]:
    """Each step's place on the epoch axis: the k-th of an epoch's n steps at epoch - 1 + k/n."""
    per_epoch: dict[int, int] = {}
    for _, e, _ in rows:
        per_epoch[e] = per_epoch.get(e, 0) + 1
    seen: dict[int, int] = {}
    out = []
    for _, e, _ in rows:
        seen[e] = seen.get(e, 0) + 1
        out.append(e - 1 + seen[e] / per_epoch[e])
    return out


def running_mean(ys: list[float], window: int) -> list[float]:
    """Mean of the last `window` finite values at each point (fewer at the start)."""
    from collections import deque

    out, total, buf = [], 0.0, deque()
    for y in ys:
        if math.isfinite(y):
            buf.append(y)
            total += y
            if len(buf) > window:
                total -= buf.popleft()
        out.append(total / len(buf) if buf else math.nan)
    return out


def window(rows: list) -> int:
    """Steps in the running mean: about half an epoch, at most a twentieth of the run (1: too few to average)."""
    epochs = len({r[1] for r in rows})
    return max(1, min(len(rows) // 20, round(len(rows) / max(epochs, 1) / 2)))


def draw(ax, rows: list, color, ls="-", labels: bool = False) -> list[float]:
    """One run's steps on `ax` against the epoch: every step thin and pale (the noise) and its running mean
    bold in line style `ls`; a run of a step or two an epoch (batch GD) as one bold line with markers.
    Returns its finite positive losses (for the y scale)."""
    xs, ys, w = positions(rows), [r[2] for r in rows], window(rows)
    each = f"loss of each step ({len(rows):,} steps)" if labels else None
    if w > 1:
        ax.plot(xs, ys, color=color, lw=0.4, alpha=0.35, label=each)
        ax.plot(xs, running_mean(ys, w), color=color, ls=ls, lw=1.8, label=f"running mean over {w} steps" if labels else None)
    else:
        ax.plot(xs, ys, color=color, ls=ls, lw=1.8, marker=".", label=each)
    return [y for y in ys if math.isfinite(y) and y > 0]


def scale(ax, losses: list[float]) -> None:
    """A log y-axis when the losses span more than LOG_SPAN; its floor at their 1st percentile (a loss of
    1e-7 on one well-learned sample would squeeze the rest into the top of the chart)."""
    if not losses or max(losses) / min(losses) <= LOG_SPAN:
        return
    ax.set_yscale("log")
    low = sorted(losses)[len(losses) // 100]
    ax.set_ylim(bottom=low / 1.5, top=max(losses) * 1.5)


def steps(path: Path, csv_path: Path, title: str = "") -> bool:
    """Draw steps.png from steps.csv; False (nothing drawn) when it holds no row."""
    rows = read_steps(csv_path)
    if not rows:
        return False
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    scale(ax, draw(ax, rows, "C0", labels=True))
    ax.set_xlabel("epoch (steps spread evenly over their epoch)")
    ax.set_ylabel("training loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    xs = positions(rows)
    ax.set_xlim(math.floor(min(xs)), max(xs))  # a file begun at a resume starts later
    per = round(len(rows) / len({r[1] for r in rows}))
    ax.set_title(f"{title + ': ' if title else ''}training loss per optimizer step (~{per:,} step{'s' * (per != 1)} "
                 f"an epoch)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return True
