"""A sweep's grid: `--grid key=v1,v2` items parsed, and one validated Member per grid point.

`plan` resolves every member's config before anything trains, so a bad value (or an unknown model,
dataset, optimizer, ... name) stops the sweep with one error line instead of failing one member later.
A member's directory name is its grid settings, `optim.name=adam,optim.lr=0.01`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from .compare import SKIP_KEYS
from .config import Config, check_known, resolve
from .errors import ConfigError

MAX_MEMBERS = 1000  # grid points in one sweep


@dataclass
class Member:
    """One grid point: its settings, its run directory under the sweep's and its resolved config."""

    name: str  # its directory name: key=value,key=value
    settings: dict[str, str]  # grid key -> value as typed
    dir: Path
    cfg: Config | None = None
    result: dict = field(default_factory=dict)  # action, rc, error of this invocation


def _split_values(raw: str) -> list[str]:
    """'sgd,adam' -> ['sgd', 'adam']; commas inside [...] belong to a list value: '[8,8],[16]'."""
    out, depth, cur = [], 0, ""
    for ch in raw:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    if depth != 0:
        raise ConfigError(f"--grid values {raw!r} have unbalanced brackets")
    return [v.strip() for v in out]


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """['optim.name=sgd,adam', 'optim.lr=0.1,0.01'] -> [('optim.name', ['sgd', 'adam']), ...]."""
    if not items:
        raise ConfigError("a sweep needs at least one --grid key=value1,value2,... (e.g. --grid optim.name=sgd,adam)")
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--grid expects key=value1,value2,... (got {item!r})")
        check_known([key], "--grid")
        if key in SKIP_KEYS:
            raise ConfigError(f"--grid cannot vary {key}: every member gets its own directory under the sweep's")
        if any(k == key for k, _ in grid):
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid {key}=a,b,c")
        values = _split_values(raw)
        if any(not v for v in values):
            raise ConfigError(f"--grid {item!r} has an empty value (values are separated by commas)")
        if len(set(values)) < len(values):
            raise ConfigError(f"--grid {item!r} repeats a value")
        grid.append((key, values))
    size = math.prod(len(v) for _, v in grid)
    if size > MAX_MEMBERS:  # a typo'd range would otherwise start hours of runs and thousands of folders
        sizes = " x ".join(str(len(v)) for _, v in grid)
        raise ConfigError(f"--grid makes {size:,} members ({sizes}); a sweep runs at most {MAX_MEMBERS:,}: "
                          f"narrow the grid or split it into several sweeps")
    return grid


def _label(settings: dict[str, str]) -> str:
    return ",".join(f"{k}={v.replace('/', '_').replace(' ', '')}" for k, v in settings.items())


def plan(config: Path | None, grid, sets: list[str]) -> list[Member]:
    """One validated Member per grid point (configs resolved now: a bad value stops the sweep before any run)."""
    from . import registry
    from .catalog import load_all

    load_all()
    members = []
    for combo in itertools.product(*[[(k, v) for v in vals] for k, vals in grid]):
        settings = dict(combo)
        cfg = resolve(config, [*sets, *(f"{k}={v}" for k, v in settings.items())])
        for key, reg in (("model.name", registry.MODELS), ("data.name", registry.DATASETS),
                         ("optim.name", registry.OPTIMIZERS), ("sched.name", registry.SCHEDULES),
                         ("loss.name", registry.LOSSES), ("task", registry.TASKS)):
            if cfg[key] != "auto":
                reg.get(cfg[key])  # an unknown name: one error line with a suggestion
        members.append(Member(_label(settings), settings, Path(), cfg))
    names = [m.name for m in members]
    if len(set(names)) < len(names):
        raise ConfigError("two grid points give the same directory name; use values that differ in more than '/' or spaces")
    return members

