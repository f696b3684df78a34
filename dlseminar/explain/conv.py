"""Convolution against full connection: the parameters of each conv layer of a small stack, those of the
fully connected layer that sees the same input, and the receptive field of every layer."""
from __future__ import annotations

from . import parse
from .text import pairs, table

# The slide's image, inferred from its numbers: about 2,300 weights per fully connected neuron is one
# 48x48 grey image (2,304 pixels); 16 filters over 8 channels of 24x24 (after 2x2 pooling) give the
# fully connected 16·(8·24·24 + 1) = 73,744, the slide's "about 73,700".
SLIDE_INPUT = [1, 48, 48]
SLIDE_FILTERS = [8, 16]
SLIDE = {"conv": [80, 1168], "dense_per_filter": [18_500, 73_700]}  # as the slide writes them


def spread(values: list[int], count: int, option: str) -> list[int]:
    """One value for every layer, or one per layer."""
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise parse.ConfigError(f"{option} needs one value, or one per layer of --filters ({count}); got {len(values)}")
    return values


def explain(*, input=None, filters=None, kernels=None, strides=None, pool=None) -> dict:
    """Conv layers on input "CxHxW" with --filters per layer, square --kernels and --strides ('same'
    padding k//2), each followed by --pool x --pool max pooling (1: none)."""
    shape = SLIDE_INPUT if input is None else parse.shape(input, "--input")
    c, h, w = shape
    fs = SLIDE_FILTERS if filters is None else parse.integers(filters, "--filters", 1, 100_000)
    ks = spread([3] if kernels is None else parse.integers(kernels, "--kernels", 1, 1_000), len(fs), "--kernels")
    ss = spread([1] if strides is None else parse.integers(strides, "--strides", 1, 1_000), len(fs), "--strides")
    p = 2 if pool is None else parse.integer(pool, "--pool", 1, 1_000)
    layers, rf, jump = [], 1, 1
    for n, (f, k, s) in enumerate(zip(fs, ks, ss)):
        pad = k // 2
        oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        if oh < 1 or ow < 1:
            raise parse.ConfigError(f"conv{n + 1}: a {k}x{k} kernel does not fit its {h}x{w} input; use a larger --input "
                                    f"or smaller --kernels")
        fan_in = c * h * w
        rf, jump = rf + (k - 1) * jump, jump * s
        layers.append({"layer": f"conv{n + 1}", "in": [c, h, w], "filters": f, "kernel": k, "stride": s, "padding": pad,
                       "out": [f, oh, ow], "conv_params": (c * k * k + 1) * f, "per_filter": c * k * k + 1,
                       "dense_per_neuron": fan_in + 1, "dense_per_filter": (fan_in + 1) * f,
                       "dense_same_output": (fan_in + 1) * f * oh * ow, "receptive_field": rf, "jump": jump})
        c, h, w = f, oh, ow
        if p > 1:
            if h < p or w < p:
                raise parse.ConfigError(f"pool{n + 1}: a {p}x{p} window does not fit the {h}x{w} map; use --pool 1 or a "
                                        f"larger --input")
            rf, jump = rf + (p - 1) * jump, jump * p
            h, w = h // p, w // p
            layers.append({"layer": f"pool{n + 1}", "in": [c, h * p, w * p], "kernel": p, "stride": p, "out": [c, h, w],
                           "receptive_field": rf, "jump": jump})
    out = {"input": shape, "pool": p,
           "layers": layers, "receptive_field": rf, "notes": []}
    if input is None and filters is None and kernels is None and strides is None and pool is None:
        out["slide"] = SLIDE
        out["notes"].append("The slide's input is not printed on it; 1x48x48 is what its numbers give: 2,304 pixels "
                            "(\"about 2,300 per neuron\"), 8·(2,304 + 1) = 18,440 (\"about 18,500\") and, after "
                            "2x2 pooling, 16·(8·24·24 + 1) = 73,744 (\"about 73,700\").")
    return out


def render(r: dict) -> str:
    convs = [lay for lay in r["layers"] if "filters" in lay]
    shape = "x".join(map(str, r["input"]))
    lines = [f"conv  input {shape} (channels x height x width); 'same' padding k//2; "
             + (f"{r['pool']}x{r['pool']} max pooling after each conv" if r["pool"] > 1 else "no pooling"), "",
             "  conv layer:  (C·k·k + 1)·F        one fully connected neuron per filter:  (C·H·W + 1)·F",
             "  fully connected layer with the conv's output size:  (C·H·W + 1)·(F·H'·W')", ""]
    rows = [[lay["layer"], "x".join(map(str, lay["in"])), f"{lay['filters']} x {lay['kernel']}x{lay['kernel']}/{lay['stride']}",
             "x".join(map(str, lay["out"])), f"{lay['conv_params']:,}", f"{lay['dense_per_filter']:,}",
             f"{lay['dense_same_output']:,}"] for lay in convs]
    lines += table(["layer", "input", "filters", "output", "conv params", "dense, F neurons", "dense, same output"], rows, 2)
    lines.append("")
    for lay in convs:
        (c, h, w), f, k = lay["in"], lay["filters"], lay["kernel"]
        ratio = lay["dense_per_filter"] / lay["conv_params"]
        lines += pairs([(f"{lay['layer']}:", f"conv ({c}·{k}·{k} + 1)·{f} = {lay['conv_params']:,};  dense per neuron "
                                             f"{c}·{h}·{w} + 1 = {lay['dense_per_neuron']:,}, for {f}: "
                                             f"{lay['dense_per_filter']:,} ({ratio:,.0f}x the conv)")])
    rows = [[lay["layer"], f"{lay['kernel']}", f"{lay['stride']}", f"{lay['jump']}", f"{lay['receptive_field']}"]
            for lay in r["layers"]]
    lines += ["", "  receptive field: r = r_prev + (k − 1)·j_prev, j = j_prev·s (r and j start at 1)",
              *table(["layer", "kernel", "stride", "jump j", "receptive field r"], rows), "",
              "  result: " + "; ".join(f"{lay['layer']} {lay['conv_params']:,} vs {lay['dense_per_filter']:,}" for lay in convs)
              + f"; the last layer sees {r['receptive_field']}x{r['receptive_field']} input pixels"]
    return "\n".join(lines + [f"  {n}" for n in r["notes"]])
