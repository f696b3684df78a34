"""One optimizer step from the same gradient: SGD, momentum, RMSProp and Adam, worked by hand and taken
from the project's optimizers (engine/optim.py: torch.optim with `dlsem train`'s default settings)."""
from __future__ import annotations

import math

NAMES = ("sgd", "momentum", "rmsprop", "adam")
FORMULAS = {
    "sgd": "W ← W − α·g",
    "momentum": "v ← μ·v + g (v starts as g);  W ← W − α·v",
    "rmsprop": "s ← ρ·s + (1 − ρ)·g² (s starts at 0);  W ← W − α·g / (√s + ε)",
    "adam": "m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);  "
            "W ← W − α·m̂ / (√v̂ + ε)",
}


def settings() -> dict:
    """The optimizers' settings `dlsem train` uses by default (config_schema's optim.* keys)."""
    from ..config_schema import SCHEMA

    return {"momentum": SCHEMA["optim.momentum"].default, "alpha": SCHEMA["optim.alpha"].default,
            "eps": SCHEMA["optim.eps"].default, "betas": list(SCHEMA["optim.betas"].default),
            "weight_decay": SCHEMA["optim.weight_decay"].default}


def by_hand(name: str, g: float, lr: float, s: dict) -> tuple[dict, float]:
    """The first step's state and update Δw for one weight with gradient g (t = 1, every state at its start)."""
    if name == "sgd":
        return {}, -lr * g
    if name == "momentum":
        return {"v": g}, -lr * g
    if name == "rmsprop":
        sq = (1 - s["alpha"]) * g * g
        return {"s": sq, "denominator": math.sqrt(sq) + s["eps"]}, -lr * g / (math.sqrt(sq) + s["eps"])
    b1, b2 = s["betas"]
    m, v = (1 - b1) * g, (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1), v / (1 - b2)
    return {"m": m, "v": v, "m_hat": m_hat, "v_hat": v_hat}, -lr * m_hat / (math.sqrt(v_hat) + s["eps"])


def by_torch(name: str, weights: list, grads: list, lr: float, s: dict) -> list:
    """The weights after one step of the registered optimizer `name`, given the gradients."""
    import torch

    from .. import engine  # noqa: F401  (registers the optimizers)
    from ..registry import OPTIMIZERS

    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g, dtype=torch.float64)
    OPTIMIZERS.get(name).fn(params, lr=lr, **s).step()
    return [p.detach().tolist() for p in params]


def first_steps(weights: list, grads: list, lr: float, loss_of) -> dict:
    """For each optimizer: formula, per-weight state and Δw by hand, the weights torch.optim gives, the
    largest difference between the two, and the loss after the step (`loss_of(weights)`)."""
    s = settings()
    out = {}
    for name in NAMES:
        states, deltas = [], []
        for W, G in zip(weights, grads):
            for g in (g for row in G for g in row):
                st, d = by_hand(name, g, lr, s)
                states.append(st)
                deltas.append(d)
        hand = [w + d for w, d in zip((w for W in weights for row in W for w in row), deltas)]
        new = by_torch(name, weights, grads, lr, s)
        flat = [w for W in new for row in W for w in row]
        out[name] = {"formula": FORMULAS[name], "state": states, "delta": deltas, "weights": new,
                     "max_abs_diff_torch": max(abs(a - b) for a, b in zip(hand, flat)), "loss_after": loss_of(new)}
    return {"settings": s, "optimizers": out}
