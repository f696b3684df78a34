"""Config values coerced to their key's type and checked against its range: one ConfigError line each.

YAML and --set give text, numbers, lists and mappings as typed; validate() turns them into what
SCHEMA declares (an int, a list of floats, ...) or says in one line what was wrong, echoing the
value cut short.
"""
from __future__ import annotations

import math
from typing import Any

from .config_schema import MAX_ITEMS, MAX_TEXT, SCHEMA, Key
from .errors import ConfigError
from .registry import suggest


def short(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters: error lines echo what was given, never megabytes of it."""
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[: 4 * limit]  # no repr of a huge string only to cut it
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce(key: str, spec: Key, v: Any) -> Any:
    kind, nullable = spec.kind.rstrip("?"), spec.kind.endswith("?")
    bad = lambda what: ConfigError(f"{key} must be {what} (got {short(v)})")  # noqa: E731
    if v is None:
        if nullable:
            return None
        raise bad({"int": "an integer", "float": "a number", "bool": "true or false"}.get(kind, "set"))
    if kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "on", "off"):
            return v.lower() in ("true", "yes", "on")
        raise bad("true or false")
    if kind == "int":
        return _to_int(v, bad)
    if kind == "float":
        return _to_float(v, bad)
    if kind == "str":
        if isinstance(v, (dict, list, tuple)):
            raise bad("a single value")
        if isinstance(v, bool):  # YAML reads yes/no/on/off as booleans
            if spec.choices and "true" in spec.choices:  # auto | true | false: the boolean is that word
                return "true" if v else "false"
            raise bad("text (quote it: 'yes')")
        text = str(v)
        if len(text) > MAX_TEXT:
            raise ConfigError(f"{key} is {len(text):,} characters long; at most {MAX_TEXT:,}")
        return text
    if kind == "batch":
        if isinstance(v, str) and v.strip().lower() == "full":
            return "full"
        n = _to_int(v, lambda _: bad("a positive integer or 'full'"))
        if n < 1:
            raise ConfigError(f"{key} must be >= 1 or 'full' (got {short(v)})")
        return n
    if kind in ("ints", "floats", "strs"):
        like = {"ints": "a list like [8, 16]", "floats": "a list like [0.9, 0.999]", "strs": "a list like [a, b]"}[kind]
        items = v
        if isinstance(v, str):
            if any(c in v for c in "[]{}"):  # a broken list that reached here as text (e.g. `hidden: 8]]`)
                raise bad(like)
            items = [s for s in v.split(",") if s.strip()]  # 16,8 is [16, 8]
        elif isinstance(v, dict):
            raise bad(like)
        elif not isinstance(v, (list, tuple)):
            items = [v]
        if len(items) > MAX_ITEMS:
            raise ConfigError(f"{key} has {len(items):,} values; at most {MAX_ITEMS:,}")
        if kind == "ints":
            return [_to_int(x, lambda _: bad("a list of integers")) for x in items]
        if kind == "floats":
            return [_to_float(x, lambda _: bad("a list of finite numbers")) for x in items]
        if any(isinstance(x, (list, dict)) for x in items):
            raise bad("a list of names")
        return [str(x).strip() for x in items]
    raise AssertionError(kind)


def _to_float(v, bad):
    if isinstance(v, bool):
        raise bad("a number")
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise bad("a number") from None
    if not math.isfinite(f):
        raise bad("a finite number")
    return f


def _to_int(v, bad):
    if isinstance(v, bool):
        raise bad("an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and len(v) < 40:  # int() of a 1 MB digit string is slow, and no count is that long
        try:
            return int(v.strip())
        except ValueError:
            pass
    raise bad("an integer")


def _huge(v: Any) -> bool:
    """An integer (or list of them) that torch and NumPy cannot hold; no count, size or seed here is that big."""
    items = v if isinstance(v, list) else [v]
    return any(isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 2**63 for x in items)


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """Coerce each value to its key's type and check its range; returns a new dict."""
    out = {}
    for key, spec in SCHEMA.items():
        v = _coerce(key, spec, values.get(key, spec.default))
        if v is not None and spec.choices and v not in spec.choices:
            raise ConfigError(f"{key} must be one of {', '.join(spec.choices)} (got {short(v)}){suggest(v, spec.choices)}")
        if v is not None and spec.check is not None:
            problem = spec.check(v)
            if problem:
                raise ConfigError(f"{key} {problem} (got {short(v)})")
        if _huge(v):
            raise ConfigError(f"{key} must be below 2**63 (got {short(v)})")
        out[key] = v
    return out
