"""plots/zoo.png of `dlsem zoo`: accuracy against forward FLOPs, and seconds per epoch, of every member."""
from __future__ import annotations

import math
from pathlib import Path

from .figure import pyplot, save


def si(n) -> str:
    """1,110,839,296 -> '1.11 G'."""
    if n is None:
        return ""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def zoo(path: Path, rows: list[dict], described: dict) -> None:
    """Best val accuracy against forward FLOPs (log axis; marker area by parameters, each point labelled),
    with the chance level drawn and the models that did not leave it hollow and marked; and the seconds
    per epoch of every member as bars, in rank order."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    shown = [r for r in rows if r["flops"] and math.isfinite(r["val_acc"])]
    if shown:
        biggest = max(r["params"] for r in shown) or 1
        cmap = plt.get_cmap("tab20")
        xs, ys = [math.log10(r["flops"]) for r in shown], [r["val_acc"] for r in shown]
        span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 0.1
        placed: list[tuple[float, float]] = []
        for i, r in enumerate(shown):
            stuck = r.get("learned") is False  # hollow: at chance, nothing to compare but its size and cost
            ax.scatter(r["flops"], r["val_acc"], s=30 + 800 * math.sqrt(r["params"] / biggest), alpha=0.6,
                       color="none" if stuck else cmap(i % cmap.N), edgecolor="gray" if stuck else "black",
                       linewidth=1.2 if stuck else 0.5, linestyle="--" if stuck else "-")
            x, y = xs[i], ys[i]  # labels of points close together (often: several at chance) go one above another
            k = sum(abs(px - x) / span_x < 0.18 and abs(py - y) / span_y < 0.04 for px, py in placed)
            placed.append((x, y))
            stuck = r.get("learned") is False
            label = f"{r['model']} ({si(r['params'])})" + (f", not learned in {r['epochs_run']} epoch{'s' * (r['epochs_run'] != 1)}" if stuck else "")
            ax.annotate(label, (r["flops"], r["val_acc"]), fontsize=8, color="dimgray" if stuck else "black",
                        xytext=(6, 4 + 11 * k), textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", lw=0.5, color="gray") if k else None)
        ax.set_xscale("log")
        if "chance" in described:
            ax.axhline(described["chance"], color="firebrick", linestyle=":", linewidth=1.2)
            ax.axhspan(described["chance"], described["learned_above"], color="firebrick", alpha=0.08, linewidth=0)
            ax.annotate(f"chance {described['chance']:.2f} (below the band's top: not learned)",
                        (0.01, described["chance"]), xycoords=("axes fraction", "data"), xytext=(0, -11),
                        textcoords="offset points", fontsize=8, color="firebrick")
        ax.margins(x=0.08, y=0.15)
    else:
        ax.text(0.5, 0.5, "no finished member", ha="center", va="center", transform=ax.transAxes)
    shape = "x".join(map(str, described["in_shape"]))
    ax.set_xlabel(f"forward FLOPs per {shape} image (log)")
    ax.set_ylabel("best val accuracy")
    ax.set_title("accuracy vs compute (marker area ~ parameters)")
    ax.grid(alpha=0.3, which="both")
    timed = [r for r in rows if math.isfinite(r["s_per_epoch"])]
    labels = [r["model"] if r["status"] == "finished" else f"{r['model']} ({r['status']})" for r in timed]
    bx.barh(range(len(timed)), [r["s_per_epoch"] for r in timed], color="tab:blue", alpha=0.7)
    for i, r in enumerate(timed):
        bx.text(r["s_per_epoch"], i, f" {r['s_per_epoch']:.3g}", va="center", fontsize=7)
    bx.set_yticks(range(len(timed)), labels, fontsize=8)
    bx.invert_yaxis()  # rank 1 on top
    bx.set_xlabel("seconds per epoch (mean)")
    bx.set_title("time")
    bx.grid(alpha=0.3, axis="x")
    failed = [r["model"] for r in rows if r["status"] not in ("finished", "diverged")]
    n = described["epochs"]
    fig.suptitle(f"zoo on {described['data']} ({shape}, {described['num_classes']} classes), "
                 f"{n} epoch{'s' if n != 1 else ''}" + (f"; not finished: {', '.join(failed)}" if failed else ""), fontsize=10)
    fig.tight_layout()
    save(fig, path)
