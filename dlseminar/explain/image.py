"""What the computer sees: one image of the bundled digits as its grid of numbers (0 black ... 255 white)."""
from __future__ import annotations

from . import parse
from .text import grid

SHADES = " .:-=+*#%@"  # 0 ... 255, darkest to brightest, for the picture beside the numbers


def explain(*, index=None) -> dict:
    """Digit number --index of the bundled 8x8 digits (sklearn's load_digits, read by datasets/images.py)."""
    from ..datasets.images import digits_images

    data = digits_images()
    n = len(data.y)
    i = 0 if index is None else parse.integer(index, "--index", 0, n - 1)
    pixels = data.X[i, 0].tolist()  # (8, 8) uint8: sklearn's 0-16 scaled to 0-255
    return {"index": i, "count": n, "label": data.class_names[int(data.y[i])], "shape": list(data.X.shape[1:]),
            "pixels": pixels, "min": min(map(min, pixels)), "max": max(map(max, pixels))}


def render(r: dict) -> str:
    c, h, w = r["shape"]
    picture = ["".join(SHADES[v * len(SHADES) // 256] * 2 for v in row) for row in r["pixels"]]
    numbers = grid(r["pixels"], lambda v: f"{v:3d}")
    lines = [f"image  what the computer sees: digit #{r['index']} of {r['count']:,} (bundled digits), label {r['label']!r}, "
             f"{c}x{h}x{w}: {h * w} numbers from 0 (dark) to 255 (bright)", "",
             *(f"{a}    {b}" for a, b in zip(numbers, picture)), "",
             f"  result: the network's input is these {h * w} numbers (here {r['min']}-{r['max']}), "
             "not a picture; the class is only the label"]
    return "\n".join(lines)
