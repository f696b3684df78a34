"""One forward and backward pass of a tiny MLP on one sample (default 2-2-1, sigmoid): every activation,
every ∂L/∂w by the chain rule, checked against torch autograd and a central finite difference, then one
step of SGD, momentum, RMSProp and Adam (optimizers.py)."""
from __future__ import annotations

import math

from . import optimizers, parse
from .text import num, nums, pairs, table
from .perceptron import sigmoid

# Illustrative weights (the slides give no numbers for the MLP). Matrix form of the slides: each layer's
# matrix is (inputs + 1) x units, its first row the biases; z = [1, a]·W.
DEFAULT_WEIGHTS = [[[0.10, -0.20], [0.40, 0.30], [-0.50, 0.60]], [[0.05], [0.70], [-0.40]]]
DEFAULT_INPUT = [1.00, 0.05]  # the salmon / sea-bass sample
DEFAULT_LABEL = [1.0]  # sea bass (label [0, 1] of the losses slide)
DEFAULT_LR = 0.1
MAX_UNITS, MAX_LAYERS = 16, 4
FD_STEP = 1e-6  # central difference (L(w + h) − L(w − h)) / 2h in float64: error about h² + 1e-16/h
ACTIVATIONS = {  # hidden units: f(z) and f'(z); the output unit is a sigmoid
    "sigmoid": (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    "tanh": (math.tanh, lambda z: 1 - math.tanh(z) ** 2),
    "relu": (lambda z: max(z, 0.0), lambda z: 1.0 if z > 0 else 0.0),
}
LOSSES = {"bce": "L = −Σⱼ [yⱼ·ln ŷⱼ + (1 − yⱼ)·ln(1 − ŷⱼ)]", "mse": "L = (1/m)·Σⱼ (yⱼ − ŷⱼ)²"}


def forward(weights, x, act: str) -> list[dict]:
    """Per layer: its input with the leading 1, z = [1, a]·W and a = f(z) (sigmoid for the last layer)."""
    layers, a = [], x
    for n, W in enumerate(weights):
        inp = [1.0, *a]
        z = [sum(inp[i] * W[i][j] for i in range(len(inp))) for j in range(len(W[0]))]
        f = sigmoid if n == len(weights) - 1 else ACTIVATIONS[act][0]
        a = [f(v) for v in z]
        layers.append({"input": inp, "z": z, "a": a})
    return layers


def loss_value(y_hat, y, loss: str) -> float:
    if loss == "mse":
        return sum((t - p) ** 2 for p, t in zip(y_hat, y)) / len(y)
    if any(p in (0.0, 1.0) for p in y_hat):
        raise parse.ConfigError("the output sigmoid saturates at exactly 0 or 1, where ln is infinite: use smaller weights")
    return -sum(t * math.log(p) + (1 - t) * math.log(1 - p) for p, t in zip(y_hat, y))


def backward(weights, layers, y, act: str, loss: str) -> None:
    """Add to each layer ∂L/∂a, f'(z), δ = ∂L/∂z and the gradient ∂L/∂W[i][j] = δⱼ·inputᵢ (the chain rule)."""
    y_hat = layers[-1]["a"]
    if loss == "mse":
        d_a = [2 * (p - t) / len(y) for p, t in zip(y_hat, y)]
    else:
        d_a = [-t / p + (1 - t) / (1 - p) for p, t in zip(y_hat, y)]
    for n in range(len(weights) - 1, -1, -1):
        layer, W = layers[n], weights[n]
        last = n == len(weights) - 1
        layer["dL_da"] = d_a
        layer["da_dz"] = [p * (1 - p) for p in layer["a"]] if last else [ACTIVATIONS[act][1](v) for v in layer["z"]]
        delta = [d * g for d, g in zip(d_a, layer["da_dz"])]
        layer["delta"] = delta
        layer["grad"] = [[delta[j] * inp for j in range(len(delta))] for inp in layer["input"]]
        # ∂L/∂a of the layer below: every path through this layer's weights (bias row 0 leads nowhere)
        d_a = [sum(delta[j] * W[i + 1][j] for j in range(len(delta))) for i in range(len(W) - 1)]


def autograd(weights, x, y, act: str, loss: str) -> list:
    """The same gradients by torch autograd (float64)."""
    import torch

    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in weights]
    a = torch.tensor(x, dtype=torch.float64)
    fs = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
    for n, W in enumerate(Ws):
        z = torch.cat([torch.ones(1, dtype=torch.float64), a]) @ W
        a = torch.sigmoid(z) if n == len(Ws) - 1 else fs[act](z)
    t = torch.tensor(y, dtype=torch.float64)
    L = torch.nn.functional.mse_loss(a, t) if loss == "mse" else \
        torch.nn.functional.binary_cross_entropy(a, t, reduction="sum")
    L.backward()
    return [W.grad.tolist() for W in Ws]


def finite_difference(weights, x, y, act: str, loss: str) -> list:
    """∂L/∂w ≈ (L(w + h) − L(w − h)) / 2h for every weight, from the forward pass alone."""
    grads = []
    for n, W in enumerate(weights):
        G = [[0.0] * len(W[0]) for _ in W]
        for i in range(len(W)):
            for j in range(len(W[0])):
                moved = []
                for h in (FD_STEP, -FD_STEP):
                    ws = [[row[:] for row in M] for M in weights]
                    ws[n][i][j] += h
                    moved.append(loss_value(forward(ws, x, act)[-1]["a"], y, loss))
                G[i][j] = (moved[0] - moved[1]) / (2 * FD_STEP)
        grads.append(G)
    return grads


def flat(matrices) -> list[float]:
    return [v for M in matrices for row in M for v in row]


def relative_errors(a, b) -> dict:
    """max |a − b| / max(|a|, |b|, 1e-8) over the weights (the floor keeps a zero gradient from dividing by 0)."""
    pairs = list(zip(flat(a), flat(b)))
    return {"max_relative_error": max(abs(u - v) / max(abs(u), abs(v), 1e-8) for u, v in pairs),
            "max_abs_error": max(abs(u - v) for u, v in pairs)}


def check_shapes(weights, x, y) -> None:
    if len(weights) > MAX_LAYERS:
        raise parse.ConfigError(f"--weights gives {len(weights)} layers; at most {MAX_LAYERS}")
    fan_in = len(x)
    for n, W in enumerate(weights):
        if len(W) != fan_in + 1:
            raise parse.ConfigError(f"--weights: layer {n + 1} takes {fan_in} input{'s' if fan_in != 1 else ''}, so its "
                                    f"matrix needs {fan_in + 1} rows (the bias row first), got {len(W)}")
        if len(W[0]) > MAX_UNITS:
            raise parse.ConfigError(f"--weights: layer {n + 1} has {len(W[0])} units; at most {MAX_UNITS}")
        fan_in = len(W[0])
    if len(y) != fan_in:
        raise parse.ConfigError(f"--label needs {fan_in} value{'s' if fan_in != 1 else ''}, one per output unit (got {len(y)})")


def explain(*, weights=None, input=None, label=None, lr=None, activation=None, loss=None) -> dict:
    """Forward, chain rule, autograd and finite-difference checks, and four optimizers' first step."""
    x = DEFAULT_INPUT if input is None else parse.numbers(input, "--input")
    if len(x) > MAX_UNITS:
        raise parse.ConfigError(f"--input has {len(x)} values; at most {MAX_UNITS}")
    Ws = DEFAULT_WEIGHTS if weights is None else parse.layers(weights, "--weights")
    y = DEFAULT_LABEL if label is None else parse.numbers(label, "--label")
    alpha = DEFAULT_LR if lr is None else parse.positive(lr, "--lr")
    act = "sigmoid" if activation is None else parse.choice(activation, "--activation", tuple(ACTIVATIONS))
    kind = "bce" if loss is None else parse.choice(loss, "--loss", tuple(LOSSES))
    check_shapes(Ws, x, y)
    if kind == "bce" and not all(0 <= t <= 1 for t in y):
        raise parse.ConfigError(f"--label for --loss bce must be in [0, 1] (got {y}); use --loss mse for other targets")
    layers = forward(Ws, x, act)
    L = loss_value(layers[-1]["a"], y, kind)
    backward(Ws, layers, y, act, kind)
    chain = [layer["grad"] for layer in layers]
    by_autograd = autograd(Ws, x, y, act, kind)
    by_fd = finite_difference(Ws, x, y, act, kind)

    def loss_of(new):
        return loss_value(forward(new, x, act)[-1]["a"], y, kind)

    return {"network": "-".join(str(n) for n in [len(x), *(len(W[0]) for W in Ws)]), "activation": act,
            "loss": kind, "formula": LOSSES[kind], "lr": alpha, "input": x, "label": y, "weights": Ws,
            "layers": layers, "loss_value": L, "gradients": chain,
            "autograd": {"gradients": by_autograd, **relative_errors(chain, by_autograd)},
            "finite_difference": {"step": FD_STEP, "gradients": by_fd, **relative_errors(chain, by_fd)},
            **optimizers.first_steps(Ws, chain, alpha, loss_of)}


# ---------------------------------------------------------------- the printout
def unit(n: int, j: int, last: bool, outputs: int, what: str = "a") -> str:
    """Name of unit j (0-based) of layer n (0-based): a1_2, z1_2, or ŷ for the output."""
    if last and what == "a":
        return "ŷ" if outputs == 1 else f"ŷ{j + 1}"
    return f"{what}{n + 1}_{j + 1}"


def chain_line(r: dict, n: int, i: int, j: int) -> str:
    """∂L/∂W[i,j] written as the chain rule's product when the path to the loss is one unit wide above
    layer n (as the slides write it), else as δⱼ · inputᵢ."""
    layers, Ws = r["layers"], r["weights"]
    last = len(layers) - 1
    name = f"∂L/∂W{n + 1}[{i},{j + 1}]"
    inp = "1" if i == 0 else (f"x{i}" if n == 0 else unit(n - 1, i - 1, False, 0))
    value = layers[n]["grad"][i][j]
    if any(len(layers[m]["z"]) != 1 for m in range(n + 1, last + 1)):
        return f"{name} = δ{n + 1}_{j + 1} · {inp} = {num(layers[n]['delta'][j])} · {num(layers[n]['input'][i])} = {num(value)}"
    out = unit(last, 0, True, 1)
    symbols, factors = [f"∂L/∂{out}"], [layers[last]["dL_da"][0]]
    for m in range(last, n, -1):  # down the single-unit layers above n
        k = j if m == n + 1 else 0
        symbols += [f"∂{unit(m, 0, m == last, 1)}/∂z{m + 1}_1", f"∂z{m + 1}_1/∂{unit(m - 1, k, False, 0)}"]
        factors += [layers[m]["da_dz"][0], Ws[m][k + 1][0]]
    z = unit(n, j, False, 0, "z")
    if n < last:
        symbols.append(f"∂{unit(n, j, False, 0)}/∂{z}")
        factors.append(layers[n]["da_dz"][j])
    else:  # the output layer's own unit j
        symbols, factors = [f"∂L/∂{unit(n, j, True, len(layers[n]['z']))}", f"∂{unit(n, j, True, len(layers[n]['z']))}/∂{z}"], \
            [layers[n]["dL_da"][j], layers[n]["da_dz"][j]]
    symbols.append(f"∂{z}/∂W{n + 1}[{i},{j + 1}]")
    factors.append(layers[n]["input"][i])
    return f"{name} = {' · '.join(symbols)}\n      = {' · '.join(f'({num(f)})' for f in factors)} = {num(value)}"


def signed(v: float) -> str:
    """A factor of a product: negative numbers in parentheses."""
    return f"({num(v)})" if num(v).startswith("-") else num(v)


def forward_lines(r: dict) -> list[str]:
    lines, last = [], len(r["layers"]) - 1
    f = r["activation"]
    for n, layer in enumerate(r["layers"]):
        W = r["weights"][n]
        for j, (z, a) in enumerate(zip(layer["z"], layer["a"])):
            terms = " + ".join(f"{num(v)}·{signed(W[i][j])}" for i, v in enumerate(layer["input"]))
            g = "σ" if n == last else {"sigmoid": "σ", "tanh": "tanh", "relu": "relu"}[f]
            zn = unit(n, j, False, 0, "z")
            lines += [f"  {zn} = {terms} = {num(z)}",
                      f"  {unit(n, j, n == last, len(layer['z']))} = {g}({zn}) = {num(a)}"]
    return lines


def render(r: dict) -> str:
    layers, last = r["layers"], len(r["layers"]) - 1
    lines = [f"backprop  {r['network']} MLP, hidden {r['activation']}, output sigmoid, one sample",
             f"  {r['formula']}   learning rate α = {r['lr']:g}",
             f"  input x = {nums(r['input'])}   label y = {nums(r['label'])}", "",
             "weights (z = [1, a]·W: row 0 holds the biases)"]
    for n, W in enumerate(r["weights"]):
        lines += table([f"W{n + 1}", *(f"unit {j + 1}" for j in range(len(W[0])))],
                       [[f"row {i}", *(num(v) for v in row)] for i, row in enumerate(W)])
    lines += ["", "forward", *forward_lines(r), f"  L = {num(r['loss_value'])}", "",
              "backward (chain rule; δ = ∂L/∂z)"]
    for n in range(last, -1, -1):
        layer, k = layers[n], len(layers[n]["z"])
        for j in range(k):
            a, z = unit(n, j, n == last, k), unit(n, j, False, 0, "z")
            lines.append(f"  ∂L/∂{a} = {num(layer['dL_da'][j])}   ∂{a}/∂{z} = {num(layer['da_dz'][j])}"
                         f"   δ{n + 1}_{j + 1} = {num(layer['delta'][j])}")
        lines += [f"  {chain_line(r, n, i, j)}" for i in range(len(layer["input"])) for j in range(k)]
    names = [f"W{n + 1}[{i},{j + 1}]" for n, W in enumerate(r["weights"]) for i in range(len(W)) for j in range(len(W[0]))]
    rows = [[nm, num(c, 10), num(a, 10), num(f, 10)] for nm, c, a, f in
            zip(names, flat(r["gradients"]), flat(r["autograd"]["gradients"]), flat(r["finite_difference"]["gradients"]))]
    lines += ["", "check", *table(["weight", "chain rule", "autograd", "finite difference"], rows),
              f"  max relative error: autograd {r['autograd']['max_relative_error']:.2e}, finite difference "
              f"{r['finite_difference']['max_relative_error']:.2e} (h = {r['finite_difference']['step']:g})", ""]
    s, opts = r["settings"], r["optimizers"]
    lines += [f"first update step (α = {r['lr']:g}; μ = {s['momentum']:g}, ρ = {s['alpha']:g}, β = {tuple(s['betas'])}, "
              f"ε = {s['eps']:g}: dlsem train's defaults)"]
    lines += [f"  {name:<9} {o['formula']}" for name, o in opts.items()]
    w = flat(r["weights"])
    rows = [[nm, num(wv), num(g), *(num(o["delta"][k]) for o in opts.values()), *(f"{v:.2e}" for v in (
        opts["rmsprop"]["state"][k]["s"], opts["adam"]["state"][k]["m_hat"], opts["adam"]["state"][k]["v_hat"]))]
            for k, (nm, wv, g) in enumerate(zip(names, w, flat(r["gradients"])))]
    lines += table(["weight", "w", "g = ∂L/∂w", *(f"Δ {n}" for n in opts), "rmsprop s", "adam m̂", "adam v̂"], rows)
    lines += ["", *pairs([(f"{name}:", f"W_new = W + Δ; loss {num(r['loss_value'])} → {num(o['loss_after'])};  "
                                       f"max |by hand − torch.optim| = {o['max_abs_diff_torch']:.1e}")
                          for name, o in opts.items()]),
              "  On the first step momentum equals SGD (v starts as g); RMSProp moves each weight by about "
              "α/√(1 − ρ) and Adam by about α, whatever the gradient's size.", "",
              f"  result: L = {num(r['loss_value'])}; chain rule = autograd = finite difference (max relative error "
              f"{max(r['autograd']['max_relative_error'], r['finite_difference']['max_relative_error']):.1e})"]
    return "\n".join(lines)
