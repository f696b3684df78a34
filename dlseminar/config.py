"""The one config path: defaults <- YAML file <- --set overrides <- named CLI options.

resolve() merges them into one read-only Config; unknown keys raise ConfigError (exit 2) with a
suggestion. The keys themselves, their defaults and docs are config_schema.py's; turning each value
into its key's type and range is config_values.py's. This module must not import torch: `dlsem
--help` stays fast.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

from .config_schema import CLI_KEYS, MAX_FILE_BYTES, MAX_SET_CHARS, SCHEMA, SECTIONS, docs
from .config_values import short, validate
from .errors import ConfigError
from .registry import suggest


def _clip(text: str, limit: int) -> str:
    """Text as typed, cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Config:
    """Resolved, validated, read-only config: `cfg["optim.lr"]` or `cfg.optim.lr`."""

    def __init__(self, values: dict[str, Any], explicit: Iterable[str] = (), source: str | None = None):
        object.__setattr__(self, "_v", dict(values))
        object.__setattr__(self, "explicit", frozenset(explicit))  # keys set by file/CLI
        object.__setattr__(self, "source", source)

    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self._v[key])

    def __getattr__(self, name: str):
        if name in self._v:
            return self[name]
        if name in SECTIONS:
            return _Section(self, name)
        raise AttributeError(name)

    def __setattr__(self, *_):
        raise AttributeError("Config is read-only; use Config.replace()")

    def replace(self, **dotted: Any) -> "Config":
        """A new validated Config with some keys changed (keys given as a__b for a.b)."""
        vals = dict(self._v)
        vals.update({k.replace("__", "."): v for k, v in dotted.items()})
        return Config(validate(vals), self.explicit | {k.replace("__", ".") for k in dotted}, self.source)

    def absolute(self) -> "Config":
        """The same config with its file and folder keys (data.path, data.root, ...) as absolute paths.

        What a run stores (config.yaml, checkpoints): `dlsem eval RUN/best.pt` then finds the data
        from any working directory. The run itself reads the paths as typed, so its messages name
        them as the user wrote them.
        """
        vals = dict(self._v)
        for key, spec in SCHEMA.items():
            if spec.path and isinstance(vals.get(key), str):
                vals[key] = os.path.abspath(os.path.expanduser(vals[key]))
        return Config(vals, self.explicit, self.source)

    def section(self, name: str) -> dict[str, Any]:
        p = name + "."
        return {k[len(p):]: self[k] for k in self._v if k.startswith(p)}

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (what config.yaml and checkpoints store)."""
        out: dict[str, Any] = {}
        for k, v in self._v.items():
            if "." in k:
                sec, sub = k.split(".", 1)
                out.setdefault(sec, {})[sub] = copy.deepcopy(v)
            else:
                out[k] = copy.deepcopy(v)
        return out


class _Section:
    def __init__(self, cfg: Config, name: str):
        self._cfg, self._name = cfg, name

    def __getattr__(self, sub: str):
        try:
            return self._cfg[f"{self._name}.{sub}"]
        except KeyError:
            raise AttributeError(f"{self._name}.{sub}") from None


def _what(v: Any) -> str:
    """A value's kind as a recipe writer would say it: null, true, 5, 'text', a list, a mapping."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    return short(v, 40)


def flatten(d: Any, where: str) -> dict[str, Any]:
    """Nested mapping -> {dotted.key: value}; `model: mlp` is short for `model: {name: mlp}`."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(d).__name__}")
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in out:  # e.g. `optim.lr: 0.1` and `optim: {lr: 0.2}`, or `model: mlp` and `model.name: cnn`
            raise ConfigError(f"{where} sets {short(key)} twice")
        out[key] = value

    for k, v in d.items():
        k = str(k)
        if k in SECTIONS and isinstance(v, dict):
            for sk, sv in v.items():
                put(f"{k}.{sk}", sv)
        elif k in SECTIONS and f"{k}.name" in SCHEMA and isinstance(v, str):
            put(f"{k}.name", v)
        elif k in SECTIONS:
            named = f" or a name ({k}: NAME)" if f"{k}.name" in SCHEMA else ""
            raise ConfigError(f"section {k!r} must be a mapping of keys{named} (got {_what(v)}) in {where}")
        else:
            put(k, v)
    return out


def check_known(keys: Iterable[str], where: str) -> None:
    for k in keys:
        if k not in SCHEMA:
            raise ConfigError(f"unknown config key {short(k)} in {where}{suggest(k, SCHEMA)}; "
                              f"`dlsem config show` lists every key")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file as {dotted.key: value}; every way it can be unreadable is one ConfigError."""
    from . import strict_yaml

    name = f"config file {short(str(path))}"
    data = strict_yaml.read_file(Path(path), name, MAX_FILE_BYTES)
    return {} if data is None else flatten(data, name)


def _looks_structured(text: str) -> bool:
    """Text meant as a YAML list or mapping: [8, 16], {a: 1}, or a half of one."""
    return text[:1] in "[{" or text[-1:] in "]}"


def parse_set(item: str) -> tuple[str, Any]:
    """'optim.lr=0.01' -> ('optim.lr', 0.01); values are parsed as YAML scalars/lists.

    A value meant as a list that does not parse ([8,,8], [8,8) is an error, not a string; a text
    key (name, data.path, ...) keeps the text as typed (007 stays 007, not the number 7).
    """
    import yaml

    from . import strict_yaml

    if len(item) > MAX_SET_CHARS:
        raise ConfigError(f"--set {_clip(item[:100].split('=', 1)[0], 40)}=...: {len(item):,} characters; "
                          f"a config value is at most {MAX_SET_CHARS:,}")
    if "=" not in item:
        raise ConfigError(f"--set expects dotted.key=value, got {short(item)}")
    key, raw = item.split("=", 1)
    key, text = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"--set {short(item)} has no key before '=' (expected dotted.key=value)")
    if not text:
        return key, None
    problem = None
    try:
        value = strict_yaml.load(text)
    except (strict_yaml.Refused, yaml.YAMLError, ValueError, OverflowError) as e:
        value = text  # not YAML (or a date-like string): the text itself
        problem = str(e) if isinstance(e, strict_yaml.Refused) else getattr(e, "problem", None)
    # an unknown key is the first thing to say (its value is checked once the key is known to take one)
    if key in SCHEMA and _looks_structured(text) and not isinstance(value, (list, dict)) and text[:1] not in "'\"":
        raise ConfigError(f"--set {_clip(key, 60)}={_clip(text, 60)}: not a valid list or mapping"
                          f"{f' ({problem})' if problem else ''}; write e.g. [8, 16], or quote text: {_clip(key, 60)}='...'")
    spec = SCHEMA.get(key)
    if spec is not None and spec.kind.rstrip("?") == "str" and value is not None \
            and not isinstance(value, (list, dict)) and text[:1] not in "'\"":
        value = text  # a name or path as typed
    return key, value


def _default_made_absolute(key: str, value: Any) -> bool:
    """A stored path that is the key's default as Config.absolute() wrote it (data -> /where/it/ran/data)."""
    default = SCHEMA[key].default
    return (SCHEMA[key].path and isinstance(value, str) and isinstance(default, str) and os.path.isabs(value)
            and value.endswith(os.sep + os.path.normpath(default)))


def same_setting(key: str, a: Any, b: Any) -> bool:
    """Two values of `key` that mean the same run: equal, or both the default folder made absolute
    (a sweep moved elsewhere, or continued from another directory, still uses the default)."""
    return a == b or (_default_made_absolute(key, a) and _default_made_absolute(key, b))


def resolve(path: str | Path | None = None, sets: Iterable[str] = (), named: dict[str, Any] | None = None,
            base: dict[str, Any] | None = None) -> Config:
    """Build the Config: defaults (or `base`, e.g. a checkpoint's) <- file <- --set <- named options."""
    values = {k: copy.deepcopy(s.default) for k, s in SCHEMA.items()}
    explicit: set[str] = set()
    if base:
        flat = flatten(base, "checkpoint config")
        check_known(flat, "the checkpoint's config")
        values.update(flat)
        explicit |= {k for k, v in flat.items() if v != SCHEMA[k].default and not _default_made_absolute(k, v)}
    if path is not None:
        flat = load_yaml(path)
        check_known(flat, f"config file {short(str(path))}")
        values.update(flat)
        explicit |= set(flat)
    for item in sets:
        k, v = parse_set(item)
        check_known([k], "--set")
        values[k] = v
        explicit.add(k)
    for opt, v in (named or {}).items():
        if v is not None:
            values[CLI_KEYS[opt]] = v
            explicit.add(CLI_KEYS[opt])
    if values.get("name") is None:
        values["name"] = Path(path).stem if path is not None else "default"
        problem = SCHEMA["name"].check(values["name"]) if path is not None else None
        if problem:
            raise ConfigError(f"the run name {short(values['name'])} (the config file's name) {problem}; "
                              f"give one with --set name=...")
    return Config(validate(values), explicit, str(path) if path else None)


def describe(cfg: Config, names: dict[str, list[str]] | None = None) -> list[tuple[str, Any, str]]:
    """(key, value, meaning) for every key, in schema order (for `dlsem config show`; `names` as for docs)."""
    meaning = docs(names)
    return [(k, cfg[k], meaning[k]) for k in SCHEMA]
