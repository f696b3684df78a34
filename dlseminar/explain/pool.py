"""Pooling: a small grid through max and average pooling, and back through max-unpooling with the switches
(where each maximum came from) that max pooling stored, as U-Net-style decoders undo it."""
from __future__ import annotations

from . import parse
from .text import grid, num

SLIDE_GRID = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]  # the classic 4x4 pooling example
MAX_SIDE = 32


def explain(*, input=None, pool=None) -> dict:
    """Rows of a grid ("1,1,2,4; 5,6,7,8; ...") through --pool x --pool max and average pooling (stride = window)."""
    import torch
    import torch.nn.functional as F

    x = [list(map(float, row)) for row in SLIDE_GRID] if input is None else parse.rows(input, "--input")
    k = 2 if pool is None else parse.integer(pool, "--pool", 1, MAX_SIDE)
    h, w = len(x), len(x[0])
    if max(h, w) > MAX_SIDE:
        raise parse.ConfigError(f"--input is {h}x{w}; give at most {MAX_SIDE}x{MAX_SIDE} (a grid to read)")
    if h < k or w < k:
        raise parse.ConfigError(f"--input is {h}x{w}, smaller than the {k}x{k} pooling window")
    t = torch.tensor(x, dtype=torch.float64)[None, None]  # (1, 1, H, W)
    mx, idx = F.max_pool2d(t, k, return_indices=True)  # idx: flat position h·W + w of each maximum in the input
    avg = F.avg_pool2d(t, k)
    unpooled = F.max_unpool2d(mx, idx, k, output_size=(h, w))
    windows = []
    for i in range(h // k):
        for j in range(w // k):
            cells = [x[a][b] for a in range(i * k, i * k + k) for b in range(j * k, j * k + k)]
            at = int(idx[0, 0, i, j])
            windows.append({"window": [i, j], "rows": [i * k, i * k + k - 1], "cols": [j * k, j * k + k - 1],
                            "values": cells, "max": float(mx[0, 0, i, j]), "switch": [at // w, at % w],
                            "mean": float(avg[0, 0, i, j])})
    return {"input": x, "pool": k, "max": mx[0, 0].tolist(), "switches": [[[v // w, v % w] for v in row] for row in
                                                                          idx[0, 0].tolist()],
            "average": avg[0, 0].tolist(), "unpooled": unpooled[0, 0].tolist(), "windows": windows,
            "dropped": [h % k, w % k]}


def render(r: dict) -> str:
    k = r["pool"]
    whole = all(float(v).is_integer() for row in r["input"] for v in row)

    def fmt(v):
        return f"{v:.0f}" if whole else num(v, 2)

    lines = [f"pool  {k}x{k} windows, stride {k}", "", "input", *grid(r["input"], fmt), ""]
    lines += [f"  window {tuple(w['window'])} (rows {w['rows'][0]}-{w['rows'][1]}, cols {w['cols'][0]}-{w['cols'][1]}): "
              f"{', '.join(fmt(v) for v in w['values'])}  →  max {fmt(w['max'])} at {tuple(w['switch'])}, "
              f"mean {num(w['mean'], 2)}" for w in r["windows"]]
    lines += ["", f"max pooling ({k}x{k})", *grid(r["max"], fmt), "",
              "switches (row, col of each maximum in the input)", *grid(r["switches"], lambda v: f"({v[0]},{v[1]})"), "",
              f"average pooling ({k}x{k})", *grid(r["average"], lambda v: num(v, 2)), "",
              "max-unpooling: each maximum back at its switch, zeros elsewhere", *grid(r["unpooled"], fmt)]
    if any(r["dropped"]):
        lines += ["", f"  The last {r['dropped'][0]} row(s) and {r['dropped'][1]} column(s) fit no whole window: "
                      "pooling drops them, unpooling returns zeros there."]
    lines += ["", f"  result: {len(r['input'])}x{len(r['input'][0])} → {len(r['max'])}x{len(r['max'][0])} → "
                  f"{len(r['unpooled'])}x{len(r['unpooled'][0])}; unpooling restores the positions, not the other values"]
    return "\n".join(lines)
