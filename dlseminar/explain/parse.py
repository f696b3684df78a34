"""The student's numbers, as typed on the command line, checked: each mistake is one ConfigError
naming the option. Every reader also takes the value already parsed (a number, a list), so tests
and other code can pass Python values."""
from __future__ import annotations

import math
import re

from ..errors import ConfigError

MAX_CHARS = 10_000  # one option's text: numbers to look at, not a data file
MAX_VALUES = 1_024  # numbers in one list or grid


def _items(text, option: str, sep: str) -> list:
    """`text` split at `sep` (a string), or the items of a list/tuple given as they are."""
    if isinstance(text, (list, tuple)):
        return list(text)
    if not isinstance(text, str):
        return [text]
    if len(text) > MAX_CHARS:
        raise ConfigError(f"{option} is {len(text):,} characters long; give at most {MAX_CHARS:,}")
    parts = [p.strip() for p in text.split(sep)] if sep else re.split(r"\s*,\s*|\s+", text.strip())
    if any(p == "" for p in parts):
        raise ConfigError(f"{option}: empty item in {text!r}")
    return parts


def number(value, option: str) -> float:
    """One finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: {value!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(f"{option}: {value!r} is not a finite number")
    return v


def numbers(text, option: str, count: int | None = None) -> list[float]:
    """Numbers separated by commas or spaces: "1.00, 0.05"."""
    values = [number(v, option) for v in _items(text, option, "")]
    if len(values) > MAX_VALUES:
        raise ConfigError(f"{option} holds {len(values):,} numbers; give at most {MAX_VALUES:,}")
    if count is not None and len(values) != count:
        raise ConfigError(f"{option} needs {count} number{'s' if count != 1 else ''} (got {len(values)})")
    return values


def rows(text, option: str, same_length: bool = True) -> list[list[float]]:
    """Rows of numbers separated by ';': "5,4,2; 4,2,8"."""
    out = [numbers(r, option) for r in _items(text, option, ";")]
    if sum(map(len, out)) > MAX_VALUES:
        raise ConfigError(f"{option} holds more than {MAX_VALUES:,} numbers")
    if same_length and len({len(r) for r in out}) > 1:
        raise ConfigError(f"{option}: every row needs the same number of values (got {[len(r) for r in out]})")
    return out


def layers(text, option: str) -> list[list[list[float]]]:
    """Weight matrices separated by '|', each as rows separated by ';' (a layer's bias row first)."""
    return [rows(m, option) for m in _items(text, option, "|")]


def integer(value, option: str, low: int = 1, high: int | None = None) -> int:
    """A whole number in [low, high]."""
    try:
        v = float(value)
        ok = math.isfinite(v) and v == int(v)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{option}: {value!r} is not a whole number")
    v = int(v)
    if v < low or (high is not None and v > high):
        limit = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{option} must be {limit} (got {v})")
    return v


def integers(text, option: str, low: int = 1, high: int | None = None) -> list[int]:
    """Whole numbers separated by commas or spaces: "3,3"."""
    values = [integer(v, option, low, high) for v in _items(text, option, "")]
    if len(values) > 64:
        raise ConfigError(f"{option} holds {len(values)} values; give at most 64")
    return values


def shape(text, option: str) -> list[int]:
    """CxHxW (or HxW for one channel): "1x48x48"."""
    parts = _items(text.lower().replace("×", "x") if isinstance(text, str) else text, option, "x")
    if len(parts) not in (2, 3):
        raise ConfigError(f"{option} must look like 1x48x48 (channels x height x width) (got {text!r})")
    dims = [integer(p, option, 1, 1_000_000) for p in parts]
    return [1, *dims] if len(dims) == 2 else dims


def positive(value, option: str) -> float:
    """A finite number > 0."""
    v = number(value, option)
    if v <= 0:
        raise ConfigError(f"{option} must be > 0 (got {value!r})")
    return v


def choice(value, option: str, choices) -> str:
    """One of `choices`."""
    from ..registry import suggest

    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)} (got {value!r}){suggest(value, choices)}")
    return value
