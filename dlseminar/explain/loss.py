"""Losses: cross-entropy of a predicted distribution against a label, and MSE / MAE of a regression output."""
from __future__ import annotations

import math

from . import parse
from .text import num, nums, pairs, table

SLIDE_CE = [[0.83, 0.17], [0.21, 0.79]]  # the untrained and a trained network's output on the salmon / sea-bass sample
SLIDE_CE_LABEL = [0.0, 1.0]
SLIDE_CE_VALUES = [1.77, 0.23]  # as the slide writes them
SLIDE_REGRESSION = ([23.5], [25.0])  # output, label
KINDS = ("ce", "mse", "mae")
SUM_TOLERANCE = 0.01  # a distribution typed with 2 decimals may miss 1 by a rounding


def is_distribution(row: list[float]) -> bool:
    return len(row) >= 2 and all(0 <= v <= 1 for v in row) and abs(sum(row) - 1) <= SUM_TOLERANCE


def cross_entropy(pred: list[float], label: list[float]) -> dict:
    """H(ŷ, y) = −Σⱼ yⱼ·ln ŷⱼ, each term kept (a term with yⱼ = 0 is 0, whatever ŷⱼ)."""
    terms = []
    for p, y in zip(pred, label):
        if y > 0 and p == 0:
            raise parse.ConfigError("--prediction gives 0 to a class the label gives weight: −log 0 is infinite")
        terms.append(-y * math.log(p) if y > 0 else 0.0)
    value = sum(terms)
    return {"prediction": pred, "label": label, "log": [math.log(p) if p > 0 else None for p in pred],
            "terms": terms, "value": value, "rounded": round(value, 2)}


def regression(pred: list[float], label: list[float], kinds) -> dict:
    errors = [y - p for p, y in zip(pred, label)]
    out = {"prediction": pred, "label": label, "errors": errors, "squared": [e * e for e in errors],
           "absolute": [abs(e) for e in errors]}
    if "mse" in kinds:
        out["mse"] = sum(out["squared"]) / len(errors)
    if "mae" in kinds:
        out["mae"] = sum(out["absolute"]) / len(errors)
    return out


def check_ce(preds, labels) -> None:
    for p in preds:
        if not is_distribution(p):
            raise parse.ConfigError(f"--prediction for cross-entropy must be probabilities in [0, 1] that sum to 1, "
                                    f"at least two classes (got {p}); for a regression output use --loss mse or mae")
    for y in labels:
        if not is_distribution(y):
            raise parse.ConfigError(f"--label for cross-entropy must be one-hot or probabilities that sum to 1 (got {y})")


def explain(*, prediction=None, label=None, loss=None) -> dict:
    """Cross-entropy ("0.83,0.17" against "0,1"; rows separated by ';'), or MSE and MAE ("23.5" against "25")."""
    kinds = None if loss is None else (parse.choice(loss, "--loss", KINDS),)
    if (prediction is None) != (label is None):
        raise parse.ConfigError("give both --prediction and --label (or neither, for the slide's examples)")
    out = {"formulas": {"ce": "H(ŷ, y) = −Σⱼ yⱼ·ln ŷⱼ", "mse": "MSE = (1/N)·Σᵢ (yᵢ − ŷᵢ)²",
                        "mae": "MAE = (1/N)·Σᵢ |yᵢ − ŷᵢ|"}, "cross_entropy": [], "regression": None, "notes": []}
    if prediction is None:
        preds, labels, regr = SLIDE_CE, [SLIDE_CE_LABEL], SLIDE_REGRESSION
        kinds = kinds or KINDS
    else:
        preds, labels = parse.rows(prediction, "--prediction"), parse.rows(label, "--label")
        regr = (preds[0], labels[0])
        if kinds is None:  # a probability distribution against one: cross-entropy; other numbers: regression
            kinds = ("ce",) if all(map(is_distribution, preds + labels)) else ("mse", "mae")
    if len(labels) not in (1, len(preds)) or any(len(y) != len(preds[0]) for y in labels):
        raise parse.ConfigError(f"--label needs one row of {len(preds[0])} values, or one such row per --prediction "
                                f"row (got {[len(y) for y in labels]})")
    if "ce" in kinds:
        check_ce(preds, labels)
        out["cross_entropy"] = [cross_entropy(p, labels[0] if len(labels) == 1 else labels[i]) for i, p in enumerate(preds)]
    if {"mse", "mae"} & set(kinds):
        if prediction is not None and (len(preds) > 1 or len(labels) > 1):
            raise parse.ConfigError("--loss mse/mae takes one row of outputs and one of labels (N values each)")
        out["regression"] = regression(*regr, kinds)
    out["losses"] = list(kinds)
    if prediction is None:
        out["slide"] = {"ce": SLIDE_CE_VALUES, "mse": 2.25, "mae": 1.5}
    if prediction is None and out["cross_entropy"]:
        out["notes"].append(f"The slide writes −ln 0.79 = 0.23: exactly it is {num(out['cross_entropy'][1]['value'])}, "
                            f"which the slide cuts to 0.23 (rounded to 2 decimals it is 0.24).")
    return out


def render(r: dict) -> str:
    def slide(k):
        return f"  (the slide: {r['slide'][k]:g})" if "slide" in r else ""

    lines = ["loss"]
    if r["cross_entropy"]:
        lines += ["", f"  cross-entropy  {r['formulas']['ce']}   (ln: natural log; 0·ln ŷ counts as 0)"]
        for i, ce in enumerate(r["cross_entropy"]):
            k = len(ce["prediction"])
            rows = [[f"class {j}", num(ce["prediction"][j]), num(ce["label"][j]),
                     num(ce["log"][j]) if ce["log"][j] is not None else "-inf", num(ce["terms"][j])] for j in range(k)]
            lines += ["", f"  case {i + 1}: ŷ = {nums(ce['prediction'], 2)}, y = {nums(ce['label'], 2)}",
                      *table(["", "ŷⱼ", "yⱼ", "ln ŷⱼ", "−yⱼ·ln ŷⱼ"], rows, indent="    "),
                      f"    H = {' + '.join(num(t) for t in ce['terms'])} = {num(ce['value'])}  (2 decimals: {ce['rounded']:.2f}"
                      + (f"; the slide: {r['slide']['ce'][i]:.2f})" if "slide" in r else ")")]
    reg = r["regression"]
    if reg:
        n = len(reg["errors"])
        lines += ["", f"  regression  N = {n}   {r['formulas']['mse']}   {r['formulas']['mae']}", ""]
        rows = [[str(i + 1), num(p), num(y), num(e), num(s), num(a)]
                for i, (p, y, e, s, a) in enumerate(zip(reg["prediction"], reg["label"], reg["errors"],
                                                        reg["squared"], reg["absolute"]))]
        lines += table(["i", "ŷᵢ", "yᵢ", "yᵢ − ŷᵢ", "(yᵢ − ŷᵢ)²", "|yᵢ − ŷᵢ|"], rows)
        results = []
        if "mse" in reg:
            results.append(("MSE", f"({' + '.join(num(s) for s in reg['squared'])}) / {n} = {num(reg['mse'])}" + slide("mse")))
        if "mae" in reg:
            results.append(("MAE", f"({' + '.join(num(a) for a in reg['absolute'])}) / {n} = {num(reg['mae'])}" + slide("mae")))
        lines += ["", *pairs(results)]
    summary = [f"H{i + 1} = {num(ce['value'])}" for i, ce in enumerate(r["cross_entropy"])]
    summary += [f"{k.upper()} = {num(reg[k])}" for k in ("mse", "mae") if reg and k in reg]
    lines += ["", f"  result: {', '.join(summary)}"]
    return "\n".join(lines + [f"  {n}" for n in r["notes"]])
