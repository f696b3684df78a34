"""A 2-D classifier's decision boundary: the still of the final weights (plots/decision_boundary.png,
drawn by the classification task's plots) and the animation epoch by epoch (plots/decision_boundary.gif).

The perceptron's line settling and the MLP bending around XOR are the lessons' pictures; a
still of the last epoch hides how training got there. Every recorded epoch, the model predicts
a fixed grid over the input plane (the same extent as the still): the random initial weights
first (epoch 0: where training starts from), every epoch up to the 20th, then about 60 frames
spread over the rest. Frames are kept as small uint8 grids (GRID x GRID: 10 kB), also in
last.pt, so a resumed run's animation still starts at epoch 0. The GIF is drawn at the end with
Pillow directly: one matplotlib figure per frame would cost ~50 ms each, this costs ~1 ms.

Binary problems show P(class 1) on a blue-red scale fixed to 0..1 (the same colour is the same
probability in every run and every frame) with the 0.5 contour in black; more classes show the
predicted class, paler where the model is less sure.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .observers import OBSERVERS, Observer
from .viz.figure import matplotlib_agg, pyplot, save

if TYPE_CHECKING:  # only named in annotations: summary.py loads the tasks, which import the observers
    from .summary import RunSummary

GRID = 100  # predictions per axis
EVERY_EPOCH, LATER = 20, 60  # the first 20 epochs (where most of the motion is), then about 60 more frames
SIZE = 300  # pixels of the square plot area: 3 per grid point
MS_FRAME, MS_LAST = 120, 2000  # the final frame (the restored best weights) is held longer


def plane(data, steps: int):
    """The 2-D input plane around the data: (points per split in original units, xx, yy, grid).

    xx, yy: (steps, steps) coordinates in original units, y along rows; grid: (steps*steps, 2) the
    same points normalised as the model sees them (float32)."""
    mean, std = data.stats.get("mean"), data.stats.get("std")
    raw = {s: (X.double() * std + mean if mean is not None else X.double(), y) for s, (X, y) in data.splits.items()}
    allx = torch.cat([X for X, _ in raw.values()])
    lo, hi = allx.min(0).values, allx.max(0).values
    pad = (hi - lo) * 0.1 + 1e-6
    gx = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), steps, dtype=torch.float64)
    gy = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), steps, dtype=torch.float64)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], 1)
    if mean is not None:
        grid = (grid - mean) / std
    return raw, xx, yy, grid.float()


def decision_boundary(path: Path, model, task, data, device, steps: int = 200) -> None:
    """Predicted class over the 2-D input plane, with the train and test points, in original units."""
    plt = pyplot()
    raw, xx, yy, grid = plane(data, steps)
    model.eval()
    with torch.inference_mode():
        probs = task.predict(model, grid.to(device)).cpu()
    k = probs.shape[1]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("coolwarm" if k == 2 else "tab10")
    if k > 10:  # class c gets tab10's colour c % 10 (else groups of k/10 neighbouring classes would share one)
        from matplotlib.colors import ListedColormap

        cmap = ListedColormap([cmap(c % 10) for c in range(k)])
    if k == 2:
        # levels fixed to 0..1 (levels=20 would spread 20 bands over whatever range this model reaches:
        # a barely trained model's 0.4..0.6 would look as sure as a trained one's 0..1)
        p1 = probs[:, 1].reshape(xx.shape).clamp(0, 1)
        cs = ax.contourf(xx, yy, p1, levels=torch.linspace(0, 1, LEVELS + 1).tolist(), cmap=cmap, alpha=0.6,
                         vmin=0, vmax=1)
        ax.contour(xx, yy, p1, levels=[0.5], colors="k", linewidths=1.5)
        bar = fig.colorbar(cs, ax=ax, ticks=[0, 0.25, 0.5, 0.75, 1])
        bar.set_label(f"predicted probability of class {data.info.class_names[1]!r}")
    else:
        ax.contourf(xx, yy, probs.argmax(1).reshape(xx.shape), levels=torch.arange(k + 1) - 0.5, cmap=cmap, alpha=0.4)
    for split, marker in (("train", "o"), ("test", "x")):
        if split in raw:
            X, y = raw[split]
            ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=0, vmax=max(k - 1, 1), marker=marker, s=14,
                       edgecolors="k" if marker == "o" else None, linewidths=0.3, label=split)
    truth = data.info.true_weights
    if truth and len(truth.get("w", ())) == 2 and truth["w"][1]:  # generated data: the line that made the classes
        w0, (w1, w2) = truth["w0"], truth["w"]
        xs = torch.tensor([float(xx.min()), float(xx.max())])
        ax.plot(xs, -(w0 + w1 * xs) / w2, color="green", linestyle="--", linewidth=1.5,
                label=f"true line {w0:g} + {w1:g}·x1 + {w2:g}·x2 = 0")
        ax.set_ylim(float(yy.min()), float(yy.max()))
    names = data.info.feature_names or ["x1", "x2"]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("decision boundary" if k <= 10 else f"decision boundary ({k} classes: colours repeat every 10)")
    fig.tight_layout()
    save(fig, path)


@OBSERVERS.register("boundary")
def _boundary(setup, optimizer, main: bool, run_dir: Path):
    """logging.boundary_gif: the decision boundary per epoch, for classifiers of 2-D inputs."""
    cfg = setup.cfg
    if not (main and cfg["logging.plots"] and cfg["logging.boundary_gif"] and setup.task.draws_boundary
            and setup.data.info.in_shape == (2,) and "train" in setup.data.splits):
        return None
    return BoundaryFrames(setup, cfg["train.epochs"])


class BoundaryFrames(Observer):
    name = "boundary"

    def __init__(self, setup, epochs: int):
        self.task, self.model, self.device = setup.task, setup.model, setup.device
        self.names = setup.data.info.class_names or []
        self.stride = max(1, math.ceil((epochs - EVERY_EPOCH) / LATER))
        self.epochs = epochs
        raw, xx, yy, grid = plane(setup.data, GRID)
        self.grid = grid.to(setup.device)
        self.extent = (float(xx.min()), float(xx.max()), float(yy.min()), float(yy.max()))
        self.points = raw["train"]  # (X in original units, y)
        # (GRID, GRID) uint8 each, row 0 = lowest y; the first: the weights before any step (a resume
        # replaces the lists with the checkpoint's, which begin with the same frame)
        self.frames: list[torch.Tensor] = [self._frame()]
        self.captions: list[str] = ["epoch 0   initial weights (before training)"]

    # ---------------------------------------------------------------- recording
    def _frame(self) -> torch.Tensor:
        """The grid's prediction as uint8: binary P(class 1) * 255; else class * 32 + confidence * 31."""
        was = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                p = self.task.predict(self.model, self.grid).float().cpu()
        finally:
            self.model.train(was)
        p = torch.nan_to_num(p, nan=0.5)
        self.k = p.shape[1]
        if p.shape[1] == 2:
            v = (p[:, 1] * 255).round()
        else:  # class in the high bits, confidence above chance in the low five
            conf, cls = p.max(1)
            k = p.shape[1]
            v = cls.clamp(max=7) * 32 + ((conf - 1 / k) / (1 - 1 / k)).clamp(0, 1) * 31
        return v.to(torch.uint8).reshape(GRID, GRID)

    def epoch_end(self, epoch: int, model, row: dict) -> None:
        if epoch > EVERY_EPOCH and epoch % self.stride and epoch != self.epochs:
            return
        self.frames.append(self._frame())
        shown = [f"{k} {row[k]:.3f}" for k in ("train/loss", "val/acc") if isinstance(row.get(k), float)]
        self.captions.append(f"epoch {epoch}   " + "   ".join(shown))

    def state_dict(self) -> dict:
        return {"frames": self.frames, "captions": self.captions}

    def load_state_dict(self, d: dict) -> None:
        self.frames, self.captions = list(d["frames"]), list(d["captions"])

    # ---------------------------------------------------------------- drawing
    def finish(self, run_dir: Path, summary: RunSummary) -> None:
        if not self.frames:
            return
        final = f"final weights: epoch {summary.best_epoch}" + (" (best, restored)" if summary.restored_best else "")
        frames = [*zip(self.frames, self.captions), (self._frame(), final)]  # the model now holds the final weights
        images = [self._draw(f, c, self.k) for f, c in frames]
        path = run_dir / "plots" / "decision_boundary.gif"
        images[0].save(path, save_all=True, append_images=images[1:], loop=0, optimize=False,
                       duration=[MS_FRAME] * (len(images) - 1) + [MS_LAST])
        summary.plots = [*(summary.plots or []), "plots/decision_boundary.gif"]

    def _draw(self, frame: torch.Tensor, caption: str, k: int):
        """One frame as a palette image: the GIF's own format, so Pillow has nothing to quantise."""
        import numpy as np
        from PIL import Image, ImageDraw

        v = frame.numpy().astype(np.int64)
        if k == 2:
            idx = v * LEVELS // 256  # P(class 1) in LEVELS bands of the blue-red scale
            cls = v >= 128
        else:
            cls = v // 32
            idx = np.minimum(cls, 7) * SHADES + (v % 32) * SHADES // 32  # class, then confidence
        edge = np.zeros_like(cls, dtype=bool)  # where the predicted class changes: the boundary
        edge[:, 1:] |= cls[:, 1:] != cls[:, :-1]
        edge[1:, :] |= cls[1:, :] != cls[:-1, :]
        idx[edge] = BLACK
        area = Image.fromarray(idx[::-1].astype(np.uint8).copy(), "P").resize((SIZE, SIZE), Image.NEAREST)  # row 0: top
        top = 24
        img = Image.new("P", (SIZE, SIZE + top), WHITE)
        img.putpalette(_palette(k))
        img.paste(area, (0, top))
        draw = ImageDraw.Draw(img)
        x0, x1, y0, y1 = self.extent
        X, y = self.points
        for (a, b), c in zip(X.tolist(), y.tolist()):
            px = (a - x0) / (x1 - x0) * SIZE
            py = top + (1 - (b - y0) / (y1 - y0)) * SIZE
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=POINTS + min(int(c), 7), outline=BLACK)
        draw.text((6, 5), caption, fill=BLACK, font=_font())
        return img


# palette layout: the background shades first, then (from 240) black, white and 8 point colours
LEVELS, SHADES = 20, 8  # binary: 20 bands of P(class 1), as the still's contour plot; more classes: 8 x 8 confidence shades
BLACK, WHITE, POINTS = 240, 241, 242


def _palette(k: int) -> list[int]:
    import numpy as np

    matplotlib = matplotlib_agg()

    if k == 2:
        shades = np.asarray(matplotlib.colormaps["coolwarm"](np.linspace(0, 1, LEVELS)))[:, :3] * 255
        points = np.array([[20, 40, 140], [120, 0, 20]] + [[0, 0, 0]] * 6)  # darker than the regions
    else:
        base = np.asarray(matplotlib.colormaps["tab10"].colors[:8]) * 255
        conf = np.linspace(0, 1, SHADES)[None, :, None]
        shades = (255 - (255 - base[:, None, :]) * (0.25 + 0.6 * conf)).reshape(-1, 3)  # pale where unsure
        points = base * 0.6
    pad = np.full((BLACK - len(shades), 3), 255.0)
    pal = np.concatenate([shades, pad, [[0, 0, 0], [255, 255, 255]], points])
    return [int(round(c)) for c in pal.flatten()]


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(13)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:
        return ImageFont.load_default()
