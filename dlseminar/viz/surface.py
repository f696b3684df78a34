"""surface.png of `dlsem surface`: the loss as a contour map, each optimizer's path on it.

A path is a line with a dot per recorded step and arrows along it; all paths start at the same black
dot and end at a star. A path that leaves the map (a diverging learning rate) is drawn up to the edge,
where an arrow and a label say that it went on.
"""
from __future__ import annotations

import math
from pathlib import Path

from .figure import pyplot, save

ARROWS = 8  # arrows along each path
MARGIN = 0.15  # space around the paths, a share of their extent


def extent(points, at_least=None) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): a square around the finite points with a margin, holding the box `at_least` too.

    Square, because both axes are weights in the same units: the map keeps the valleys' true shape."""
    pts = [p for p in points if all(v is not None and math.isfinite(v) for v in p)]
    xs, ys = [p[0] for p in pts] + list(at_least or ())[:2], [p[1] for p in pts] + list(at_least or ())[2:]
    mid = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    half = max(max(max(xs) - min(xs), max(ys) - min(ys)) / 2 * (1 + MARGIN), 0.05 * max(map(abs, mid)), 1e-3)
    return mid[0] - half, mid[0] + half, mid[1] - half, mid[1] + half


def weight_names(model, features: list[str]) -> list[str]:
    """The names of a model's trained scalars: a one-output perceptron's as the slides write them (w0 the
    bias, wi the weight of input i), any other model's as parameter[index]."""
    import torch

    layers = [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]
    slides = len(layers) == 1 and isinstance(layers[0], torch.nn.Linear) and layers[0].out_features == 1
    names = []
    for name, p in model.named_parameters():
        for i in range(p.numel() if p.requires_grad else 0):
            if slides:
                names.append("w0 (the bias)" if name.endswith("bias") else
                             f"w{i + 1} (the weight of {features[i] if i < len(features) else f'x{i + 1}'})")
            else:
                names.append(f"{name}[{i}]" if p.numel() > 1 else name)
    return names


def _inside(p, box) -> bool:
    return (all(v is not None and math.isfinite(v) for v in p)
            and box[0] <= p[0] <= box[1] and box[2] <= p[1] <= box[3])


def _clip(points, box):
    """The path up to where it first leaves the map, ending on the edge; and whether it left."""
    kept = []
    for p in points:
        if not _inside(p, box):
            if kept and all(v is not None and math.isfinite(v) for v in p):
                a, t = kept[-1], 1.0  # how far along a -> p the edge is
                for lo, hi, u, v in ((box[0], box[1], a[0], p[0]), (box[2], box[3], a[1], p[1])):
                    if v > hi:
                        t = min(t, (hi - u) / (v - u))
                    elif v < lo:
                        t = min(t, (lo - u) / (v - u))
                kept.append((a[0] + t * (p[0] - a[0]), a[1] + t * (p[1] - a[1])))
            return kept, True
        kept.append(tuple(p))
    return kept, False


def _levels(z, np):
    """Contour levels: spaced evenly in log(loss - min) when the loss spans decades, else linearly."""
    finite = z[np.isfinite(z)]
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.linspace(lo - 1, hi + 1, 3)
    if hi - lo > 20 * (float(np.percentile(finite, 10)) - lo + 1e-12):
        return np.concatenate([[lo], lo + np.geomspace((hi - lo) * 1e-3, hi - lo, 24)])
    return np.linspace(lo, hi, 24)


def draw_surface(path: Path, s: dict, cfg) -> None:
    """s: what `surface.run` writes to surface.json; cfg: its config (for the title)."""
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap

    plt = pyplot()
    xs, ys = s["x"]["values"], s["y"]["values"]
    z = np.ma.masked_invalid(np.array(s["loss"], dtype=float))  # None (not finite) -> nan -> masked
    box = (xs[0], xs[-1], ys[0], ys[-1])
    fig, ax = plt.subplots(figsize=(8, 7.6))
    levels = _levels(z.filled(np.nan), np)
    # a pale map (white valley, grey walls): the paths' colours stay readable down to the minimum
    cmap = ListedColormap(plt.cm.Greys(np.linspace(0.0, 0.6, 256)))
    cf = ax.contourf(xs, ys, z, levels=levels, cmap=cmap, norm=BoundaryNorm(levels, 256), extend="max")
    ax.contour(xs, ys, z, levels=levels, colors="grey", linewidths=0.4, alpha=0.7)
    bar = fig.colorbar(cf, ax=ax, shrink=0.85, format="%.3g")
    bar.set_label("training loss" + (" (with the L1/L2 penalty)" if cfg["loss.l1"] or cfg["loss.l2"] else ""))
    for i, t in enumerate(s["paths"]):
        color = f"C{i}"
        pts, left = _clip(t["points"], box)
        final = "-" if t["final_loss"] is None else f"{t['final_loss']:.3g}"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", color=color, lw=1.4, ms=2.2 if len(pts) < 300 else 1.2,
                alpha=0.9, label=f"{t['label']}: {t['status']}, loss {final}, {t['steps']} steps")
        for k in range(0, len(pts) - 1, max(1, (len(pts) - 1) // ARROWS)):
            if pts[k] != pts[k + 1]:
                ax.annotate("", xy=pts[k + 1], xytext=pts[k],
                            arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2, mutation_scale=12))
        if left and len(pts) > 1:  # an arrow onto the edge, the label just inside it
            ax.annotate("", xy=pts[-1], xytext=pts[-2], arrowprops=dict(arrowstyle="-|>", color=color, lw=1.4,
                                                                      mutation_scale=16))
            right, top = pts[-1][0] > sum(box[:2]) / 2, pts[-1][1] > sum(box[2:]) / 2
            ax.annotate(f"{t['label']}: diverged, off the map", xy=pts[-1], xytext=(-8 if right else 8, -8 if top else 8),
                        textcoords="offset points", color=color, fontsize=9, fontweight="bold",
                        ha="right" if right else "left", va="top" if top else "bottom",
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=color, alpha=0.85))
        elif len(pts) > 1:
            ax.plot(*pts[-1], marker="*", ms=14, color=color, mec="white", mew=0.8, zorder=5)
    if s["paths"] and _inside(s["paths"][0]["points"][0], box):
        ax.plot(*s["paths"][0]["points"][0], "o", ms=9, color="black", mec="white", mew=1.2, zorder=6,
                label="start (all paths)")
    ax.set(xlim=box[:2], ylim=box[2:], aspect="equal", xlabel=s["x"]["name"], ylabel=s["y"]["name"])
    units = " (standardised inputs)" if cfg["data.standardize"] else ""
    what = {"exact": f"exact loss over the two trained weights{units}",
            "pca": "loss on the plane of the path's two main directions (PCA; Li et al. 2018)",
            "random": "loss along two random filter-normalised directions (Li et al. 2018)"}[s["mode"]]
    ax.set_title(f"{s['name']}: {what}\n{s['samples']} training samples"
                 f"{'; ' + s['note'] if s['note'] else ''}; a star ends each path", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2 if len(s["paths"]) > 3 else 1)
    fig.tight_layout()
    save(fig, path)
