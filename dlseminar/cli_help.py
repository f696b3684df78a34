"""Readable `--help` for every dlsem command, and `dlsem --version`.

Typer prints a type column next to each parameter (<str>, <int>, <path>, and <bool> even for
flags such as --help that take no value). Here an option that takes a value shows what to
type instead (`--lr LR`, `--out DIR`, `--set KEY=VALUE`); flags and arguments show no type (an
argument's name and help say what it is). Commands opt in with `cls=Command` (groups:
`cls=Group`); tests/unit/test_config_strict.py runs every command's --help and fails on a
type placeholder.
"""
from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup

# What each option's value is, by its flag; an option not listed shows its name in capitals.
# An explicit metavar= on the option wins (e.g. a --out that is a file, not a folder).
SET_HELP = "Set any config key: --set optim.lr=0.01 (repeatable); see `dlsem config show`."

METAVARS = {
    "--set": "KEY=VALUE", "--grid": "KEY=A,B,...", "--out": "DIR", "--resume": "CKPT", "--write": "FILE",
    "--batch-size": "N|full", "--lr": "LR", "--start": "LR", "--end": "LR", "--epochs": "N", "--patience": "N",
    "--seed": "N", "--devices": "N", "--jobs": "N", "--steps": "N", "--classes": "N", "--top-k": "K",
    "--model": "NAME", "--data": "NAME", "--optimizer": "NAME", "--loss": "NAME", "--models": "NAMES",
    "--device": "DEVICE", "--dropout": "P", "--weight-decay": "WD", "--split": "SPLIT", "--input": "SHAPE",
    "--score-threshold": "SCORE",
}


def _no_type(*_args, **_kwargs):
    return None


class _Readable:
    """Mixed into typer's command and group classes: names option values, drops the type column."""

    def get_params(self, ctx):
        params = super().get_params(ctx)  # the command's own and its --help
        for p in params:
            if p.param_type_name == "argument" or getattr(p, "is_flag", False):
                p.display_type_rich = _no_type  # typer's help asks the parameter for its type label here
                if p.param_type_name == "argument" and p.metavar is None:
                    p.metavar = (p.name or "value").strip("_").upper()  # usage: dlsem eval CKPT
            elif p.metavar is None:
                long = next((o for o in p.opts if o.startswith("--")), "")
                p.metavar = METAVARS.get(long) or (p.name or "value").strip("_").upper()
        return params


class Command(_Readable, TyperCommand):
    """A dlsem command with readable help."""


class Group(_Readable, TyperGroup):
    """A dlsem command group with readable help."""


def package_version() -> str:
    """The installed distribution's version; the source tree's __version__ when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("dlseminar")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def show_version(value: bool) -> None:
    """--version: print `dlsem <version>` and leave before any command runs."""
    if value:
        print(f"dlsem {package_version()}")
        raise typer.Exit()
