"""`dlsem models show NAME --plot FILE`: a block diagram of a model, drawn with matplotlib alone.

The boxes come from the layer table (models/summary.structure): one box per block (ResNet's
`layer1.0`, GoogLeNet's `inception3a`, U-Net's `down.0`), and one per stage of a plain stack of
layers (the cnn's and VGG's conv -> [BN] -> ReLU -> pool runs, cut after each pool). The main path
runs top to bottom; a residual block's skip is an arc on the left (identity or projection), a
skip concatenation an arc on the right from the encoder block to the decoder block that takes
it (max-unpooling's switches travel with it), an auxiliary head a branch to a box on the right.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .figure import pyplot, save

POOL_KINDS = ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
SHORT = {"Conv2d": "conv", "ConvTranspose2d": "up-conv", "BatchNorm2d": "BN", "MaxPool2d": "maxpool",
         "AvgPool2d": "avgpool", "AdaptiveAvgPool2d": "global pool", "AdaptiveMaxPool2d": "global maxpool",
         "MaxUnpool2d": "max-unpool", "Linear": "fc", "Dropout": "dropout", "Dropout2d": "dropout",
         "Flatten": "flatten"}
STEP, WIDTH, HEIGHT = 1.0, 5.2, 0.74  # box pitch, width and height in data units


@dataclass
class Box:
    """One box of the diagram: a block, or a stage of a plain stack of layers, with its rows."""

    names: list[str]  # the rows' blocks, first to last
    rows: list = field(default_factory=list)
    stage: bool = False  # layers of a plain stack (joined until a pool)

    @property
    def title(self) -> str:
        return self.names[0] if len(self.names) == 1 else f"{self.names[0]} .. {self.names[-1]}"

    def text(self) -> str:
        counts: dict[str, int] = {}
        for r in self.rows:
            if r.kind != "branch":
                k = SHORT.get(r.kind, r.kind)
                counts[k] = counts.get(k, 0) + 1
        parts = " · ".join(k if n == 1 else f"{n} {k}" for k, n in counts.items())
        shape = "x".join(map(str, self.rows[-1].shape))
        return f"{parts}  ->  {shape}  ({sum(r.params for r in self.rows):,} params)"

    def closed(self) -> bool:
        """A stage ends after its pool (the cnn's conv-BN-ReLU-pool), and where the maps become vectors."""
        return self.rows[-1].kind in POOL_KINDS or len(self.rows[-1].shape) != len(self.rows[0].shape)


def boxes(rows) -> tuple[list[Box], dict[str, list[Box]]]:
    """The main path's boxes in order, and the auxiliary heads' boxes by the block that feeds them."""
    main: list[Box] = []
    aux: dict[str, list[Box]] = {}
    heads: dict[str, Box] = {}
    for r in rows:
        if r.aux:
            if r.link is not None:  # the branch row comes first, then the head's layers
                heads[r.block] = Box([r.block])
                aux.setdefault(r.link[1], []).append(heads[r.block])
            heads[r.block].rows.append(r)
            continue
        last = main[-1] if main else None
        in_stack = r.block == r.layer and r.call  # a layer of a plain stack, not of a block
        if last is not None and not in_stack and not last.stage and last.names[-1] == r.block:
            last.rows.append(r)
        elif last is not None and in_stack and last.stage and not last.closed():
            last.names.append(r.block)
            last.rows.append(r)
        else:
            main.append(Box([r.block], [r], stage=in_stack))
    return main, aux


def plot(path: str | Path, rows, title: str, overwrite: bool = False) -> Path:
    """`models show --plot FILE`: the diagram to a .png file, refused with one line (a folder, a run's file,
    an existing file without `overwrite`, another suffix) before anything is drawn."""
    from .. import io
    from ..errors import ConfigError

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--plot {str(path)!r}: give a file name ending in .png")
    io.check_file(path, option="--plot", overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw(path, rows, title)
    return path


def draw(path: Path, rows, title: str) -> None:
    """Write the block diagram of the layer table `rows` (summary.structure) to `path` (PNG)."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    main, aux = boxes(rows)
    y = {id(b): -i * STEP for i, b in enumerate(main)}
    where = {n: b for b in main for n in b.names}
    skips = sorted(((abs(y[id(where[src])] - y[id(b)]), y[id(where[src])], y[id(b)], kind, b)
                    for b in main for kind, src in _links(b) if kind in ("concat", "unpool") and src in where),
                   key=lambda t: t[0])
    concat = [t for t in skips if t[3] == "concat" or not any(k == "concat" for k, _ in _links(t[4]))]
    right = WIDTH / 2 + 0.5 + 0.35 * len(concat) + (2 * WIDTH / 2 + 1.8 if aux else 0)
    fig, ax = plt.subplots(figsize=(0.85 * (right + WIDTH / 2 + 2.2), 0.5 * len(main) + 1.6))
    shown: dict[str, str] = {}
    for i, b in enumerate(main):
        _box(ax, 0, y[id(b)], b, "#e8f4e8" if any(k == "residual" for k, _ in _links(b)) else "#eef0f7")
        if i:
            _arrow(ax, [(0, y[id(main[i - 1])] - HEIGHT / 2), (0, y[id(b)] + HEIGHT / 2)], "0.3")
        for kind, _ in _links(b):
            if kind == "residual":  # from the block's input, around it, added to its output
                gap = (STEP - HEIGHT) / 2  # the "+" sits mid-gap below the box; the next skip leaves after it
                top, bottom = y[id(b)] + HEIGHT / 2 + gap / 2, y[id(b)] - HEIGHT / 2 - gap
                x = -WIDTH / 2 - 0.3 - 0.2 * (i % 2)  # neighbours' skips side by side, not one line
                _arrow(ax, [(0, top), (x, top), (x, bottom), (-0.12, bottom)], COLOURS[kind])
                ax.text(0, bottom, "+", ha="center", va="center", fontsize=8, color=COLOURS[kind], weight="bold",
                        bbox=dict(boxstyle="circle,pad=0.08", facecolor="white", edgecolor=COLOURS[kind], lw=0.8))
                label = "projection" if any("projection" in r.note for r in b.rows) else "identity"
                ax.text(x - 0.08, y[id(b)], label, ha="right", va="center", fontsize=6.5, color=COLOURS[kind])
                shown["residual"] = "residual skip, added: identity or projection (1x1 conv)"
        for k, head in enumerate(aux.get(b.names[-1], [])):
            xa, ya = WIDTH + 1.8, y[id(b)] - k * STEP
            _box(ax, xa, ya, head, "#fdf0e0")
            _arrow(ax, [(WIDTH / 2, y[id(b)]), (xa - WIDTH / 2, ya)], COLOURS["aux"])
            shown["aux"] = "auxiliary head: a classifier used in training only (its loss weighted by loss.aux_weight)"
    for n, (_, ys, yd, kind, b) in enumerate(concat):  # nested: the longest skip outermost
        x = WIDTH / 2 + 0.5 + 0.35 * n
        _arrow(ax, [(WIDTH / 2, ys), (x, ys), (x, yd), (WIDTH / 2, yd)], COLOURS["concat"])
        switches = any(k == "unpool" for k, _ in _links(b))
        shown["concat"] = "skip, concatenated" + (" (and the pool's switches for max-unpooling)" if switches else "")
    ax.legend([Line2D([], [], color=COLOURS[k], lw=1.5) for k in shown], list(shown.values()), loc="upper center",
              bbox_to_anchor=(0.5, 0.0), fontsize=7, frameon=False, ncol=1)
    ax.set_xlim(-WIDTH / 2 - 2.2, right)
    ax.set_ylim(-(len(main) - 1) * STEP - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)


COLOURS = {"residual": "tab:green", "concat": "tab:purple", "unpool": "tab:purple", "aux": "tab:orange"}


def _links(b: Box) -> list[tuple[str, str]]:
    return [r.link for r in b.rows if r.link is not None]


def _box(ax, x: float, yc: float, b: Box, face: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - WIDTH / 2, yc - HEIGHT / 2), WIDTH, HEIGHT, boxstyle="round,pad=0.02",
                                facecolor=face, edgecolor="0.35", lw=0.8))
    ax.text(x, yc + 0.14, b.title, ha="center", va="center", fontsize=7.5, weight="bold")
    ax.text(x, yc - 0.16, b.text(), ha="center", va="center", fontsize=6.5)


def _arrow(ax, points: list[tuple[float, float]], colour: str) -> None:
    """A polyline through `points` with an arrowhead at the last one."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1] + (xs[-1],), ys, color=colour, lw=1.0, solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2],
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0, mutation_scale=8, shrinkA=0, shrinkB=0))
