"""plots/network.png: a small 2-D classifier drawn as the slides (and TensorFlow Playground) draw it,
from the trained model itself.

One column per layer: the two inputs, each hidden layer, the output. Every node is a small map of
its own value over the input plane (the plane of decision_boundary.png, in original units): an
input's map is that feature (standardised, as the model sees it), a hidden unit's map is its
activation, an output's map is its class probability with the training points on it. A hidden
unit's black line is where its pre-activation (after batch norm, if any) crosses 0: in the first
layer a straight line, the line the unit cuts the plane along; with one small hidden layer the
output map repeats those lines dashed, so XOR's two lines and their combination are in one picture.
Colour scales: probabilities on 0..1 (the same colour is the same probability in every run, as in
decision_boundary.png), sigmoid and tanh units on their whole range (a saturated unit looks it),
other units (relu, elu, maxout) out to their own largest value, white at the activation of 0.
Connections are coloured by the weight's sign (orange positive, blue negative) and drawn with a
width growing with |w| / the largest |w| in the picture; a maxout unit has k weights per input, no single
sign, and is drawn grey by the largest |w| of its pieces. Layers wider than MAX_UNITS show their
first MAX_UNITS units and say how many more there are.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..boundary import plane
from ..models.layers import Maxout
from ..models.perceptron import Perceptron
from .figure import pyplot, save

MAX_UNITS = 8  # drawn units per layer
STEPS = 60  # grid points per axis of a node's map
NODE, OUT_NODE = 1.0, 1.7  # inches: a hidden or input node's map, an output node's map
GAP = 1.4  # inches between two columns
POS, NEG = "#f59322", "#0877bd"  # Playground's orange and blue
DARK_POS, DARK_NEG, LINES = "#a35400", "#04437a", "#8e1fa3"  # the points (darker than the maps), the dashed lines
ACTIVATIONS = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Identity)
RANGES = {nn.Sigmoid: (0.0, 1.0), nn.Tanh: (-1.0, 1.0)}  # maps of bounded units: the whole range


@dataclass
class Stage:
    """One layer of weights and what follows it up to the next layer of weights."""

    weight: nn.Module  # nn.Linear or Maxout
    after: list[nn.Module]  # batch norm, the activation, dropout

    def activation(self) -> nn.Module | None:
        return next((m for m in self.after if isinstance(m, ACTIVATIONS)), None)

    def weights(self) -> torch.Tensor:
        """(out, k, in): k = 1 for a Linear, the maxout pieces otherwise."""
        w = self.weight.linear.weight if isinstance(self.weight, Maxout) else self.weight.weight
        out = self.weight.out_features
        return w.detach().float().cpu().reshape(out, -1, w.shape[1])

    def bias(self) -> torch.Tensor | None:
        return None if isinstance(self.weight, Maxout) else self.weight.bias.detach().float().cpu()


def stages(model: nn.Module) -> list[Stage] | None:
    """The model as layers of weights: the `mlp` zoo model (Flatten, then Linear or Maxout blocks with
    batch norm, an activation and dropout) and the perceptron; None for anything else."""
    if isinstance(model, Perceptron):
        return [Stage(model.linear, [model.act])]
    if not isinstance(model, nn.Sequential):
        return None
    out: list[Stage] = []
    for m in model:
        if isinstance(m, (nn.Linear, Maxout)):
            out.append(Stage(m, []))
        elif isinstance(m, (nn.BatchNorm1d, nn.Dropout, *ACTIVATIONS)) and out:
            out[-1].after.append(m)
        elif not (isinstance(m, nn.Flatten) and not out):
            return None  # a convolution, a reshape, anything that is not an MLP
    return out or None


def unit_maps(model_stages: list[Stage], x: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
    """Per stage, (pre-activation, output) for the inputs x (N, 2) as the model sees them: (N, units) each.

    The pre-activation is the Linear's output after batch norm (None for maxout: no single one); the
    output is what the next stage receives (the final stage's: the scores). The model must be in eval
    mode (dropout off, batch norm from its running statistics)."""
    out = []
    with torch.inference_mode():
        for st in model_stages:
            x = st.weight(x)
            pre = x if isinstance(st.weight, nn.Linear) else None
            for m in st.after:
                x = m(x)
                if isinstance(m, nn.BatchNorm1d) and pre is not None:
                    pre = x
            out.append((pre, x))
    return out


def edge_style(w: float, wmax: float, signed: bool = True) -> tuple[tuple[float, float, float, float], float]:
    """(RGBA colour, line width) of a connection of weight w when the largest |w| drawn is wmax: orange for
    w > 0, blue for w < 0 (grey when unsigned), width and opacity growing with |w| / wmax."""
    from matplotlib.colors import to_rgb

    share = min(abs(w) / wmax, 1.0) if wmax > 0 else 0.0
    rgb = to_rgb("0.45" if not signed else POS if w > 0 else NEG)
    return (*rgb, 0.25 + 0.75 * share), 0.3 + 4.7 * share


def network(path: Path, model: nn.Module, data, device, probs=None) -> bool:
    """Draw plots/network.png for a 2-D MLP or perceptron classifier; False (nothing written) for other
    models or data. probs: the task's scores -> class probabilities (output maps show raw scores without)."""
    st = stages(model)
    if st is None or tuple(data.info.in_shape) != (2,) or not data.splits:
        return False
    raw, xx, yy, grid = plane(data, STEPS)
    was = model.training
    model.eval()
    try:
        maps = unit_maps(st, grid.to(device))
    finally:
        model.train(was)
    maps = [(None if p is None else p.float().cpu(), a.float().cpu()) for p, a in maps]
    outputs = [(v.numpy(), label, cls) for v, label, cls in _outputs(maps[-1][1], probs, data.info.class_names)]
    maps = [(None if p is None else p.numpy(), a.numpy()) for p, a in maps]  # matplotlib takes numpy arrays
    train = raw.get("train")
    _draw(path, st, maps, outputs, grid.numpy(), xx.numpy(), yy.numpy(),
          None if train is None else (train[0].numpy(), train[1].numpy()), data.info.feature_names or ["x1", "x2"])
    return True


def _outputs(scores: torch.Tensor, probs, names: list[str]) -> list[tuple[torch.Tensor, str, int | None]]:
    """(map, label, class) per output unit: its class probability when the task's probs are given."""
    if probs is None:
        return [(scores[:, c], f"score {c}", None) for c in range(scores.shape[1])]
    p = probs(scores).float()
    names = names or [str(c) for c in range(p.shape[1])]
    if scores.shape[1] == 1:  # one sigmoid output: P(class 1)
        return [(p[:, 1], f"P({names[1]})", 1)]
    return [(p[:, c], f"P({names[c]})", c) for c in range(p.shape[1])]


def _draw(path, st, maps, outputs, grid, xx, yy, train, features) -> None:
    import matplotlib.colors as mcolors

    plt = pyplot()
    cmap = mcolors.LinearSegmentedColormap.from_list("playground", [NEG, "#ffffff", POS])
    ext = (float(xx.min()), float(xx.max()), float(yy.min()), float(yy.max()))
    shape = xx.shape
    hidden = st[:-1]
    cols = [2] + [act.shape[1] for _, act in maps[:-1]] + [len(outputs)]  # units per layer
    shown = [min(n, MAX_UNITS) for n in cols]
    sizes = [NODE] * (len(cols) - 1) + [OUT_NODE]
    pitch = [s + 0.45 for s in sizes]
    W = 0.5 + sum(sizes) + GAP * (len(cols) - 1) + 0.5
    H = max(n * p for n, p in zip(shown, pitch)) + 1.6  # + headers above, the caption below
    fig = plt.figure(figsize=(W, H))
    bg = fig.add_axes((0, 0, 1, 1), zorder=0)
    bg.set_xlim(0, W)
    bg.set_ylim(0, H)
    bg.axis("off")
    # node boxes in inches: (left, bottom) per drawn unit, top to bottom, columns centred on the middle
    x0 = [0.5 + sum(sizes[:c]) + GAP * c for c in range(len(cols))]
    mid = 0.8 + (H - 1.6) / 2
    boxes = [[(x0[c], mid + shown[c] * pitch[c] / 2 - (i + 1) * pitch[c] + 0.3) for i in range(shown[c])]
             for c in range(len(cols))]

    def node(c, i, values, span, label, name, lines=None):
        """span: the colour scale's (low, high), or its middle alone: then as far each way as the map reaches."""
        left, bottom = boxes[c][i]
        ax = fig.add_axes((left / W, bottom / H, sizes[c] / W, sizes[c] / H), zorder=2, label=name)
        if not isinstance(span, tuple):
            half = float(abs(values - span).max()) or 1.0
            span = (span - half, span + half)
        ax.imshow(values.reshape(shape), origin="lower", extent=ext, aspect="auto", cmap=cmap,
                  norm=mcolors.Normalize(*span), interpolation="bilinear")
        if lines is not None and float(lines.min()) < 0 < float(lines.max()):
            ax.contour(xx, yy, lines.reshape(shape), levels=[0], colors="k", linewidths=0.9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(ext[:2])
        ax.set_ylim(ext[2:])
        bg.text(left + sizes[c] / 2, bottom - 0.06, label, ha="center", va="top", fontsize=7)
        return ax

    # connections first (under the nodes), the strongest drawn last
    ws = [s.weights() for s in st]
    wmax = max(float(w[:shown[c + 1], :, :shown[c]].abs().max()) for c, w in enumerate(ws))
    for c, w in enumerate(ws):
        signed = w.shape[1] == 1
        edges = [(float(w[j, :, i].abs().max() if not signed else w[j, 0, i]), i, j)
                 for j in range(shown[c + 1]) for i in range(shown[c])]
        for v, i, j in sorted(edges, key=lambda e: abs(e[0])):
            (xa, ya), (xb, yb) = boxes[c][i], boxes[c + 1][j]
            colour, width = edge_style(v, wmax, signed)
            bg.plot([xa + sizes[c], xb], [ya + sizes[c] / 2, yb + sizes[c + 1] / 2], color=colour, lw=width,
                    solid_capstyle="round", zorder=1)
    for i in range(2):
        node(0, i, grid[:, i], 0.0, features[i], f"input {i}")
    for layer, (s, (pre, act)) in enumerate(zip(hidden, maps[:-1]), start=1):
        f = s.activation()
        # a bounded activation on its whole range (saturation shows); else centred on the activation of 0
        span = RANGES.get(type(f)) or (float(f(torch.zeros(1))) if f is not None else 0.0)
        b = s.bias()
        for u in range(shown[layer]):
            label = f"h{layer}.{u + 1}" + (f"  b {float(b[u]):+.2f}" if b is not None else "")
            node(layer, u, act[:, u], span, label, f"hidden {layer} unit {u}", None if pre is None else pre[:, u])
    first_lines = maps[0][0] if len(hidden) == 1 and maps[0][0] is not None and shown[1] == cols[1] <= 4 else None
    b = st[-1].bias()
    for u in range(shown[-1]):
        values, label, cls = outputs[u]
        ax = node(len(cols) - 1, u, values, (0.0, 1.0) if cls is not None else 0.0,
                  label + (f"  b {float(b[u]):+.2f}" if b is not None and len(b) == len(outputs) else ""),
                  f"output {u}")
        if cls is not None:
            ax.contour(xx, yy, values.reshape(shape), levels=[0.5], colors="k", linewidths=1.2)
        if first_lines is not None:  # the lines this output combines
            for k in range(first_lines.shape[1]):
                ax.contour(xx, yy, first_lines[:, k].reshape(shape), levels=[0], colors=LINES, linewidths=1.3,
                           linestyles="--")
        if train is not None and cls is not None:
            X, y = train
            keep = slice(None, None, max(1, len(y) // 300))  # at most ~300 points
            ax.scatter(X[keep, 0], X[keep, 1], c=[DARK_POS if int(c) == cls else DARK_NEG for c in y[keep]], s=6,
                       edgecolors="k", linewidths=0.2)
    headers = ["input"] + [f"hidden {k}\n{cols[k]} units, {_act_name(s)}" for k, s in enumerate(hidden, 1)] + ["output"]
    for c, text in enumerate(headers):
        top = boxes[c][0][1] + sizes[c]
        bg.text(x0[c] + sizes[c] / 2, top + 0.12, text, ha="center", va="bottom", fontsize=8, weight="bold")
        if cols[c] > shown[c]:
            bg.text(x0[c] + sizes[c] / 2, boxes[c][-1][1] - 0.3, f"+{cols[c] - shown[c]} more", ha="center",
                    va="top", fontsize=8, style="italic")
    caption = ("each map: the node's value over the input plane, orange high, blue low, white at a pre-activation of "
               "0 (an input's mean); scales: probabilities 0-1, sigmoid and tanh units their whole range, other "
               "units their own largest value. Black line: where a hidden unit's pre-activation is 0, or an output's "
               "probability 0.5" + ("; dashed: the first layer's lines" if first_lines is not None else "")
               + f". Connections: orange w > 0, blue w < 0, width ~ |w| (widest {wmax:.2f}).")
    bg.text(0.3, 0.12, textwrap.fill(caption, int(W * 17)), fontsize=7, va="bottom")
    save(fig, path)


def _act_name(s: Stage) -> str:
    f = s.activation()
    name = f"maxout k={s.weight.k}" if isinstance(s.weight, Maxout) else type(f).__name__.lower() if f else "linear"
    return name + (", bn" if any(isinstance(m, nn.BatchNorm1d) for m in s.after) else "")
