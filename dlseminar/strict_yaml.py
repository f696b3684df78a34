"""Reading YAML written by hand (recipes, --set values) strictly.

PyYAML's safe_load keeps the last of two equal keys without a word, and expands aliases (`*a`)
into shared references: a few hundred bytes of nested anchors ("billion laughs") become a
structure that copying, flattening or printing walks billions of times. A recipe needs neither,
so the loader below refuses both, and nesting deeper than any recipe needs, at the line where
they appear. Like safe_load, it builds only plain data (no Python objects).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_DEPTH = 32  # a recipe nests 3 levels; this only stops pathological input early


class Refused(Exception):
    """Valid YAML that a recipe may not hold; the message says what and on which line."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (at any depth), anchors, aliases and deep nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._path: list[Any] = []  # the keys (or list indexes) above the node being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise Refused(f"uses the {kind}{_cut(event.anchor)} at line {line}: anchors and aliases are not "
                          f"read in a recipe; write the values out")
        if len(self._path) > MAX_DEPTH:
            raise Refused(f"nests deeper than {MAX_DEPTH} levels at line {line}")
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        try:
            node = super().compose_node(parent, index)
            if isinstance(node, yaml.MappingNode):
                self._check_unique(node)
            return node
        finally:
            self._path.pop()

    def _check_unique(self, node: yaml.MappingNode) -> None:
        where = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in self._path if p is not None)
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue  # a complex key: the constructor refuses it as unhashable
            line = key.start_mark.line + 1
            if key.value in seen:
                name = f"{where}.{key.value}".lstrip(".")
                raise Refused(f"sets {_cut(name)!r} twice (lines {seen[key.value]} and {line})")
            seen[key.value] = line


def load(text: str) -> Any:
    """Parse one YAML document; raises Refused or yaml.YAMLError (and ValueError for odd dates)."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_file(path: Path, name: str, max_bytes: int) -> Any:
    """Parse the YAML file `path` (called `name` in messages); every way it can fail is one ConfigError.

    Refused before parsing: a missing file, a folder, a FIFO or device (reading would block or never
    end), more than `max_bytes` (a pasted data file, a runaway script), text that is not UTF-8.
    """
    if not path.exists():
        raise ConfigError(f"{name} not found")
    if path.is_dir():
        raise ConfigError(f"{name.replace('config file', 'config path')} is a directory, expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"{name} is not a regular file")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)  # never more: the size on disk may lie (/proc) or change
        if len(raw) > max_bytes:
            size = max(path.stat().st_size, len(raw))
            raise ConfigError(f"{name} is {size / 1e6:.1f} MB; a recipe is a few KB (at most {max_bytes / 1e6:g} MB is read)")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    except OSError as e:
        raise ConfigError(f"cannot read {name}: {e.strerror or e}") from None
    try:
        return load(text)
    except Refused as e:
        raise ConfigError(f"{name} {e}") from None
    except (ValueError, OverflowError) as e:  # e.g. a date-like value PyYAML cannot build
        raise ConfigError(f"{name} has a value that cannot be read: {_cut(str(e), 120)}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid syntax"
        if "'\\t'" in problem:  # PyYAML's words for a tab: "found character '\t' that cannot start any token"
            problem += " (YAML indents with spaces, not tabs)"
        raise ConfigError(f"{name} is not valid YAML{at}: {_cut(problem, 160)}") from None


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
