"""The activation functions of the deck and their derivatives, drawn to one PNG, with where each saturates
(its gradient nearly vanishes: what makes deep sigmoid networks slow to train)."""
from __future__ import annotations

from pathlib import Path

from . import parse

DEFAULT_OUT = "explain_activations.png"
SUFFIXES = (".png", ".svg", ".pdf")
RANGE = (-5.0, 5.0)
POINTS = 1001  # x step 0.01
FLAT = 0.05  # |f'(x)| below this: saturated (sigmoid's steepest slope is 0.25)
FUNCTIONS = [  # name, formula, f(x) on a tensor
    ("sigmoid", "σ(x) = 1 / (1 + e^(−x))", lambda x, torch: torch.sigmoid(x)),
    ("tanh", "tanh(x)", lambda x, torch: torch.tanh(x)),
    ("ReLU", "max(0, x)", lambda x, torch: torch.relu(x)),
    ("leaky ReLU", "max(0.1·x, x)", lambda x, torch: torch.nn.functional.leaky_relu(x, 0.1)),
    ("ELU", "x if x ≥ 0, α(eˣ − 1) otherwise (α = 1)", lambda x, torch: torch.nn.functional.elu(x, 1.0)),
    # a maxout unit of two linear pieces over one input: it learns its own piecewise-linear shape
    ("maxout", "max(w₁x + b₁, w₂x + b₂) = max(x, −0.5·x − 1)", lambda x, torch: torch.maximum(x, -0.5 * x - 1)),
]


def intervals(xs: list[float], flat: list[bool]) -> list[list[float]]:
    """[start, end] of each run of consecutive x where `flat` holds."""
    out, start = [], None
    for i, f in enumerate(flat):
        if f and start is None:
            start = xs[i]
        if start is not None and (not f or i == len(flat) - 1):
            out.append([start, xs[i] if f else xs[i - 1]])
            start = None
    return out


def curves() -> tuple[list[float], list[dict]]:
    """x, and for each function its values, its derivative (autograd) and where |f'| < FLAT."""
    import torch

    x = torch.linspace(*RANGE, POINTS, dtype=torch.float64, requires_grad=True)
    out = []
    for name, formula, f in FUNCTIONS:
        y = f(x, torch)
        (dy,) = torch.autograd.grad(y.sum(), x)  # elementwise: each y_i depends on x_i only
        flat = (dy.abs() < FLAT).tolist()
        out.append({"name": name, "formula": formula, "y": y.tolist(), "dy": dy.tolist(),
                    "saturates": [[round(a, 2) + 0.0, round(b, 2) + 0.0] for a, b in intervals(x.tolist(), flat)],
                    "derivative_range": [round(float(dy.min()), 4), round(float(dy.max()), 4)]})
    return x.detach().tolist(), out


def where(f: dict) -> str:
    if not f["saturates"]:
        low, high = f["derivative_range"]
        return f"never saturates on [{RANGE[0]:g}, {RANGE[1]:g}] (f' in [{low:g}, {high:g}])"
    parts = []
    for a, b in f["saturates"]:
        parts.append(f"x ≤ {b:g}" if a <= RANGE[0] else (f"x ≥ {a:g}" if b >= RANGE[1] else f"{a:g} ≤ x ≤ {b:g}"))
    return "|f'| < " + f"{FLAT:g} for " + " and ".join(parts)


def draw(x: list[float], functions: list[dict], path: Path) -> None:
    from ..viz.figure import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharex=True)
    for ax, f in zip(axes.flat, functions):
        ax.plot(x, f["y"], color="tab:blue", lw=2, label="f(x)")
        ax.plot(x, f["dy"], color="tab:orange", lw=1.5, ls="--", label="f'(x)")
        for n, (a, b) in enumerate(f["saturates"]):
            ax.axvspan(a, b, color="0.85", zorder=0, label=None if n else f"saturated: |f'| < {FLAT:g}")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.axvline(0, color="0.5", lw=0.6)
        ax.set_title(f"{f['name']}\n{f['formula']}", fontsize=9)
        ax.set_ylim(-1.6, 3.2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("x")
    fig.suptitle("Activation functions (solid) and their derivatives (dashed); grey: where the gradient vanishes")
    fig.tight_layout()
    save(fig, path)


def explain(*, out=None, overwrite=False) -> dict:
    """Plot sigmoid, tanh, ReLU, leaky ReLU, ELU and maxout with their derivatives to --out (a PNG)."""
    from .. import io

    target = Path(DEFAULT_OUT if out is None else out)
    own = out is None or io.same_path(target, DEFAULT_OUT)  # the command's own file: a rerun rewrites it
    io.check_file(target, overwrite=bool(overwrite), own=own, what=f"the plot to {str(target)!r}")
    if target.suffix.lower() not in SUFFIXES:
        raise parse.ConfigError(f"--out {str(target)!r}: give a file name ending in {', '.join(SUFFIXES)}")
    x, functions = curves()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        draw(x, functions, target)
    except OSError as e:
        raise parse.ConfigError(f"cannot write the plot to {str(target)!r}: {e.strerror or e}") from None
    return {"out": str(target), "range": list(RANGE), "threshold": FLAT,
            "functions": [{k: f[k] for k in ("name", "formula", "saturates", "derivative_range")} for f in functions]}


def render(r: dict) -> str:
    w = max(len(f["name"]) for f in r["functions"])
    lines = [f"activations  on x in [{r['range'][0]:g}, {r['range'][1]:g}]; saturated: |f'(x)| < {r['threshold']:g}", ""]
    lines += [f"  {f['name']:<{w}}  {f['formula']}" for f in r["functions"]]
    lines += [""] + [f"  {f['name']:<{w}}  {where(f)}" for f in r["functions"]]
    lines += ["", f"  result: {r['out']}"]
    return "\n".join(lines)
