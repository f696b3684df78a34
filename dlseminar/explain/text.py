"""Plain-text layout shared by the topics' printers: numbers, aligned tables, grids, label: value lists."""
from __future__ import annotations


def num(v: float, digits: int = 4) -> str:
    """`v` with `digits` decimals (in e-notation from a million up); never "-0.0000"."""
    s = f"{v:.{digits}e}" if abs(v) >= 1e6 else f"{v:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def nums(values, digits: int = 4) -> str:
    """A list of numbers as "[a, b, c]"."""
    return "[" + ", ".join(num(v, digits) for v in values) + "]"


def table(header: list[str], rows: list[list[str]], left: int = 1, indent: str = "  ") -> list[str]:
    """Fixed-width columns: the first `left` columns left-aligned, the others right-aligned (numbers)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return indent + "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), indent + "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def grid(matrix, fmt=str, indent: str = "  ") -> list[str]:
    """A 2-D grid of values, every column the same width."""
    cells = [[fmt(v) for v in row] for row in matrix]
    w = max((len(c) for row in cells for c in row), default=1)
    return [indent + " ".join(c.rjust(w) for c in row) for row in cells]


def pairs(items: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    """"label  value" lines with the values aligned."""
    w = max((len(k) for k, _ in items), default=0)
    return [f"{indent}{k.ljust(w)}  {v}" for k, v in items]
