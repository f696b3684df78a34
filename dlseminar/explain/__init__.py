"""`dlsem explain TOPIC`: the deck's worked numbers, recomputed with every intermediate value.

Each topic is a module with `explain(**options) -> dict` (numbers, lists and strings only: what
`--json` prints; its defaults are the slide's example) and `render(result) -> str` (the printout).
The options a topic takes are its `explain` keyword arguments; `run` refuses any other.
"""
from __future__ import annotations

import inspect
import math

from ..errors import ConfigError
from ..registry import suggest
from . import activations, backprop, conv, image, loss, perceptron, pool, softmax

TOPICS = {m.__name__.rpartition(".")[2]: m for m in (perceptron, softmax, loss, backprop, conv, pool, image, activations)}


def option_names(topic: str) -> list[str]:
    """The options `topic` takes, as keys of `run`'s options (the CLI flag with '-' for '_')."""
    return list(inspect.signature(module(topic).explain).parameters)


def module(topic: str):
    if topic not in TOPICS:
        raise ConfigError(f"unknown topic {topic!r} for dlsem explain{suggest(topic, TOPICS)}; "
                          f"choose from: {', '.join(TOPICS)}")
    return TOPICS[topic]


def run(topic: str, options: dict | None = None) -> dict:
    """The worked example of `topic` for `options` (the slide's when empty): a JSON-ready dict."""
    options = dict(options or {})
    accepted = option_names(topic)
    for key in options:
        if key not in accepted:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in accepted) or "none"
            raise ConfigError(f"--{key.replace('_', '-')} does not apply to `dlsem explain {topic}` (its options: {flags})")
    result = {"topic": topic, **module(topic).explain(**options)}
    bad = next(iter(non_finite(result)), None)
    if bad is not None:  # the student's numbers overflow a float somewhere on the way
        raise ConfigError(f"explain {topic}: {bad} is not a finite number with these values; use smaller numbers")
    return result


def render(result: dict) -> str:
    """The printout of a `run` result."""
    return module(result["topic"]).render(result)


def non_finite(value, path: str = "result"):
    """Paths of the inf/nan floats in a nested result (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from non_finite(v, f"{path}.{k}" if path != "result" else k)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from non_finite(v, f"{path}[{i}]")


__all__ = ["TOPICS", "option_names", "render", "run"]
