"""Name -> builder registries (models, datasets, losses, optimizers, tasks, ...).

Adding a component is one decorated function; nothing else in the code branches on
names. The builder's first docstring line is what `dlsem models` / `dlsem datasets` show.
This module imports nothing that registers: catalog.load_all() loads every registry.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Callable[..., Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        """First line of the builder's docstring (one-line description)."""
        text = (self.fn.__doc__ or "").strip()
        return text.splitlines()[0] if text else ""


def suggest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry:
    """A named collection of builders; duplicate names raise, unknown names suggest."""

    def __init__(self, kind: str, key: str):
        self.kind = kind  # e.g. "model"
        self.key = key  # the config key that selects from it, e.g. "model.name"
        self._entries: dict[str, Entry] = {}

    def register(self, name: str | None = None, **meta):
        def deco(fn):
            n = name or fn.__name__
            if n in self._entries:
                raise ValueError(f"{self.kind} {n!r} is registered twice")
            self._entries[n] = Entry(n, fn, meta)
            return fn

        return deco

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r} for {self.key}{suggest(name, self._entries)}; "
                f"choose from: {', '.join(self.names())}"
            ) from None

    def unregister(self, name: str) -> None:
        """Remove `name` (a test that registered a component of its own cleans up with this)."""
        del self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]


MODELS = Registry("model", "model.name")
DATASETS = Registry("dataset", "data.name")
LOSSES = Registry("loss", "loss.name")
OPTIMIZERS = Registry("optimizer", "optim.name")
TASKS = Registry("task", "task")
SCHEDULES = Registry("lr schedule", "sched.name")


def backbones() -> list[str]:
    """Zoo models a detector can stand on: those registered with `backbone=` (how to cut them,
    see models/detector.py BODIES)."""
    return [e.name for e in MODELS.entries() if "backbone" in e.meta]


def call_builder(entry: Entry, cfg, section: str, common=("name",), **given):
    """Call a registered builder with the `section.*` config keys its signature names.

    `given` are arguments the caller supplies (shapes, seed, ...); `common` are section
    keys the caller handles itself. Any other key of the section that was set explicitly
    but that this builder does not take is reported on stderr.
    """
    import inspect

    from .console import note

    params = [p for p in inspect.signature(entry.fn).parameters if p not in given]
    values = cfg.section(section)
    for key in sorted(cfg.explicit):
        sub = key[len(section) + 1:] if key.startswith(section + ".") else None
        if sub and sub not in common and sub not in params:
            note(f"{key} is ignored by {entry.name!r} (it takes: {', '.join(params) or 'no options'})")
    kwargs = {p: values[p] for p in params if p in values}
    return entry.fn(**given, **kwargs)
