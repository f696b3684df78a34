"""Perceptron: ŷ = σ(w₀ + Σᵢ xᵢ·wᵢ), the deck's first lesson, for the slide's weights or the student's."""
from __future__ import annotations

import math

from . import parse
from .text import num, pairs

# σ(x₁ + 1.75·x₂ − 1.75): the slides' decision line x₁ + 1.75·x₂ = 1.75 (datasets/synthetic.py TRUE_LINE),
# bias first as in the slides' matrix form.
SLIDE_WEIGHTS = [-1.75, 1.0, 1.75]
SLIDE_INPUT = [1.00, 0.05]  # the salmon / sea-bass sample of the losses slide
FORMULAS = {"sigmoid": "ŷ = σ(w₀ + Σᵢ xᵢ·wᵢ),  σ(z) = 1 / (1 + e^(−z))",
            "identity": "ŷ = w₀ + Σᵢ xᵢ·wᵢ  (identity activation: the slides' regression perceptron)"}


def sigmoid(z: float) -> float:
    """1 / (1 + e^(−z)) without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def explain(*, weights=None, input=None, activation=None) -> dict:
    """The output of one perceptron: weights "w0,w1,...,wk", input "x1,...,xk", sigmoid or identity."""
    w = SLIDE_WEIGHTS if weights is None else parse.numbers(weights, "--weights")
    x = SLIDE_INPUT if input is None else parse.numbers(input, "--input")
    act = "sigmoid" if activation is None else parse.choice(activation, "--activation", tuple(FORMULAS))
    if len(w) != len(x) + 1:
        raise parse.ConfigError(f"--weights needs w0 (the bias) and one weight per input: {len(x) + 1} numbers "
                                f"for {len(x)} input{'s' if len(x) != 1 else ''} (got {len(w)})")
    terms = [xi * wi for xi, wi in zip(x, w[1:])]
    z = w[0] + sum(terms)
    y = sigmoid(z) if act == "sigmoid" else z
    notes = []
    if weights is None and input is None:
        notes.append("The losses slide's ŷ = 0.83 for this sample comes from the untrained network's random "
                     "weights (not on the slide); `dlsem explain loss` starts from it.")
    if act == "sigmoid":
        side = "on the positive side of" if z >= 0 else "on the negative side of"
        notes.append(f"ŷ {'≥' if y >= 0.5 else '<'} 0.5: class {int(y >= 0.5)} — the input lies {side} the decision "
                     f"line w₀ + Σᵢ xᵢ·wᵢ = 0 (z = {num(z)}).")
    return {"formula": FORMULAS[act], "activation": act, "weights": {"w0": w[0], "w": w[1:]}, "input": x,
            "products": terms, "z": z, "output": y, "notes": notes}


def render(r: dict) -> str:
    w0, w, x = r["weights"]["w0"], r["weights"]["w"], r["input"]
    rows = [("inputs", "  ".join(f"x{i + 1} = {num(v)}" for i, v in enumerate(x))),
            ("weights", f"w0 = {num(w0)}  " + "  ".join(f"w{i + 1} = {num(v)}" for i, v in enumerate(w)))]
    rows += [(f"x{i + 1}·w{i + 1}", f"{num(xi)} · {num(wi)} = {num(p)}")
             for i, (xi, wi, p) in enumerate(zip(x, w, r["products"]))]
    rows.append(("z = w0 + Σ xi·wi", f"{num(w0)} + " + " + ".join(num(p) for p in r["products"]) + f" = {num(r['z'])}"))
    if r["activation"] == "sigmoid":
        rows.append(("ŷ = σ(z)", f"1 / (1 + e^({num(-r['z'])})) = {num(r['output'])}"))
    else:
        rows.append(("ŷ = z", num(r["output"])))
    lines = ["perceptron", f"  {r['formula']}", "", *pairs(rows), "", f"  result: ŷ = {num(r['output'])}"]
    return "\n".join(lines + [f"  {n}" for n in r["notes"]])
