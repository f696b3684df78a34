"""Softmax: class scores (logits) to probabilities, σ(z)ⱼ = e^(zⱼ/T) / Σₖ e^(zₖ/T) (the deck's cat/dog/horse table)."""
from __future__ import annotations

import math

from . import parse
from .text import num, table

SLIDE_LOGITS = [[5.0, 4.0, 2.0], [4.0, 2.0, 8.0], [4.0, 4.0, 1.0]]  # three input images, one row each
SLIDE_CLASSES = ["cat", "dog", "horse"]
SLIDE_ROUNDED = [[0.71, 0.26, 0.04], [0.02, 0.00, 0.98], [0.49, 0.49, 0.02]]  # the slide's 2-decimal table
EXP_LIMIT = 700.0  # e^710 overflows a float: beyond this the exponents are shifted by their maximum


def class_names(text, count: int) -> list[str]:
    if text is None:
        return SLIDE_CLASSES if count == len(SLIDE_CLASSES) else [f"class {j + 1}" for j in range(count)]
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n) for n in text]
    if len(names) != count or any(not n or len(n) > 30 for n in names):
        raise parse.ConfigError(f"--classes needs {count} comma-separated names of at most 30 characters, one per "
                                f"logit (got {text!r})")
    return names


def one_row(z: list[float], t: float) -> dict:
    scaled = [v / t for v in z]
    top = max(scaled)
    # e^(z - max) / Σ e^(z - max) is the same fraction; shown shifted only when e^z itself would overflow
    shift = top if max(abs(v) for v in scaled) > EXP_LIMIT else 0.0
    exps = [math.exp(v - shift) for v in scaled]
    total = sum(exps)
    probs = [e / total for e in exps]
    return {"logits": z, "scaled": scaled, "shift": shift, "exp": exps, "sum": total, "softmax": probs,
            "rounded": [round(p, 2) for p in probs], "argmax": probs.index(max(probs))}


def explain(*, logits=None, classes=None, temperature=None) -> dict:
    """Softmax of each row of logits ("5,4,2; 4,2,8"), optionally at a temperature T."""
    z_rows = SLIDE_LOGITS if logits is None else parse.rows(logits, "--logits")
    if len(z_rows[0]) < 2:
        raise parse.ConfigError("--logits needs at least two classes per row")
    t = 1.0 if temperature is None else parse.positive(temperature, "--temperature")
    names = class_names(classes, len(z_rows[0]))
    out = {"formula": "σ(z)ⱼ = e^(zⱼ/T) / Σₖ e^(zₖ/T)", "temperature": t, "classes": names,
           "rows": [one_row(z, t) for z in z_rows], "notes": []}
    if logits is None and temperature is None:
        out["slide_rounded"] = SLIDE_ROUNDED
        out["notes"].append("The slide's table: the same probabilities rounded to 2 decimals.")
    if t != 1.0:
        effect = "below 1 sharpens the distribution towards the top class" if t < 1 else "above 1 flattens it towards uniform"
        out["notes"].append(f"T = {t:g}: {effect}.")
    if any(r["shift"] for r in out["rows"]):
        out["notes"].append("Rows marked * are shown as e^(z/T − max): the same fractions, without overflow.")
    return out


def render(r: dict) -> str:
    names, t = r["classes"], r["temperature"]
    rows = []
    for i, row in enumerate(r["rows"]):
        exp_label = "e^(z/T − max)*" if row["shift"] else "e^(z/T)"
        rows += [[str(i + 1), "logit z", *(num(v) for v in row["logits"]), ""]]
        if t != 1.0:
            rows += [["", "z/T", *(num(v) for v in row["scaled"]), ""]]
        rows += [["", exp_label, *(num(v) for v in row["exp"]), num(row["sum"])],
                 ["", "softmax σ(z)", *(num(v) for v in row["softmax"]), num(sum(row["softmax"]))],
                 ["", "rounded", *(f"{v:.2f}" for v in row["rounded"]), ""],
                 ["", "prediction", *("←" if j == row["argmax"] else "" for j in range(len(names))), ""]]
    lines = ["softmax", f"  {r['formula']}   (T = {t:g})", "",
             *table(["row", "", *names, "Σ"], rows, left=2), ""]
    best = ", ".join(f"row {i + 1}: {names[row['argmax']]} {num(max(row['softmax']), 2)}" for i, row in enumerate(r["rows"]))
    lines.append(f"  result: {best}")
    return "\n".join(lines + [f"  {n}" for n in r["notes"]])
