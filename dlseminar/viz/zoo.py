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
        cmap = plt.get_cmap("tab20")
        for i, r in enumerate(shown):
            stuck = r.get("learned") is False  # hollow: at chance, nothing to compare but its size and cost
            ax.scatter(r["flops"], r["val_acc"], s=_area(r, shown), alpha=0.6,
                       color="none" if stuck else cmap(i % cmap.N), edgecolor="gray" if stuck else "black",
                       linewidth=1.2 if stuck else 0.5, linestyle="--" if stuck else "-")
        ax.set_xscale("log")
        ax.margins(x=0.08, y=0.15)
        if "chance" in described:
            ax.axhline(described["chance"], color="firebrick", linestyle=":", linewidth=1.2)
            ax.axhspan(described["chance"], described["learned_above"], color="firebrick", alpha=0.08, linewidth=0)
            n = shown[0]["epochs_run"]
            ax.annotate(f"chance {described['chance']:.2f}; hollow, below the band's top: not learned in {n} "
                        f"epoch{'s' * (n != 1)}", (0.01, described["chance"]), xycoords=("axes fraction", "data"),
                        xytext=(0, -11), textcoords="offset points", fontsize=8, color="firebrick")
        _labels(fig, ax, shown)
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


def _area(r: dict, shown: list[dict]) -> float:
    """A marker's area in points^2: by the square root of its parameters, relative to the largest model's."""
    biggest = max(m["params"] for m in shown) or 1
    return 30 + 800 * math.sqrt(r["params"] / biggest)


def _labels(fig, ax, shown: list[dict]) -> None:
    """Each point's name and size next to it, where it covers no other marker and no label placed before:
    right of the point, left, above or below its marker, then the same a line further up or down each
    step, with a leader line once it is off the point. Several models at chance sit close together;
    their labels stay near their own markers instead of running over each other. The boxes are
    measured as drawn, so long names and any figure size are handled alike."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()  # the limits and the text metrics as they will be saved
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = [ax.transData.transform((r["flops"], r["val_acc"])) for r in shown]
    radii = [math.sqrt(_area(r, shown)) / 2 * fig.dpi / 72 for r in shown]
    markers = [Bbox([[x - q, y - q], [x + q, y + q]]) for (x, y), q in zip(centres, radii)]
    placed: list = []
    for i in sorted(range(len(shown)), key=lambda i: (shown[i]["val_acc"], shown[i]["flops"])):  # bottom up
        r = shown[i]
        stuck = r.get("learned") is False
        style = dict(fontsize=8, color="dimgray" if stuck else "black", textcoords="offset points")
        label, at = f"{r['model']} ({si(r['params'])})", (r["flops"], r["val_acc"])
        probe = ax.annotate(label, at, xytext=(0, 0), **style)
        w, h = probe.get_window_extent(renderer).width, probe.get_window_extent(renderer).height
        probe.remove()
        (x, y), q = centres[i], radii[i]
        near = [(0.7 * q, 0.3 * q), (-0.7 * q - w, 0.3 * q), (-w / 2, q + 2), (-w / 2, -q - 2 - h)]
        others = [m for j, m in enumerate(markers) if j != i] + placed
        best = None
        for k in range(8):
            for dx, dy in near:
                for lift in ((0.0,) if k == 0 else (k * (h + 1), -k * (h + 1))):
                    box = Bbox([[x + dx, y + dy + lift], [x + dx + w, y + dy + lift + h]])
                    if frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1) and \
                            not any(box.overlaps(o) for o in others):
                        best = (dx, dy + lift, k > 0)
                        break
                if best:
                    break
            if best:
                break
        dx, dy, far = best or (0.7 * q, 0.3 * q, False)  # nowhere free: beside its point, as before
        placed.append(Bbox([[x + dx, y + dy], [x + dx + w, y + dy + h]]))
        ax.annotate(label, at, xytext=(dx * 72 / fig.dpi, dy * 72 / fig.dpi), **style,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="gray", shrinkA=0, shrinkB=q * 72 / fig.dpi)
                    if far else None)
