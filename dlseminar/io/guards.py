"""Where a command may write (every `--out`, `--write`), checked before any work:

- a path that exists and that the command did not create is refused unless the user passes
  --overwrite; a command's own outputs (its default file, a folder holding its marker file such as
  sweep.json) may be rewritten by a rerun;
- whatever the flags, never an input of the command (the config, data, checkpoint or images being
  read; paths compared after resolving `..` and symlinks) and never a run directory's own files
  (RUN_FILES, any `*.pt`) from another command;
- a path under a file, or in a folder the user cannot write, is one clear error before any work.

Also the helpers around those rules: a free numbered folder (numbered_dir), a previous run's files
cleared for --overwrite (clear_run), and the paths a config reads (config_inputs).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError

# What makes a folder a run directory, and the files of a run that no other command may replace.
RUN_FILES = ("config.yaml", "metrics.csv", "steps.csv", "summary.json", "best.pt", "last.pt")
# Entries of a run directory written by a run or by the commands around it (sweep's train.log,
# report.html); anything else in a folder is the user's. Lock files are hidden: starting with ".".
RUN_ENTRIES = (*RUN_FILES, "train.log", "report.html", "plots", "tensorboard")
PLOT_SUFFIXES = (".png", ".gif")  # what a run writes into plots/


# ---------------------------------------------------------------- what a path is
def _real(p: str | Path) -> Path:
    return Path(os.path.realpath(p))


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether a and b name the same file (after `..`, symlinks and hard links)."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return _real(a) == _real(b)


def inside(child: str | Path, parent: str | Path) -> bool:
    """Whether `child` is `parent` or lies under it (resolved)."""
    c, p = _real(child), _real(parent)
    return c == p or p in c.parents


def is_run_dir(d: str | Path) -> bool:
    """A folder a training run wrote: it holds a checkpoint, metrics or summary (or config.yaml and plots/)."""
    d = Path(d)
    if not d.is_dir():
        return False
    if any((d / n).is_file() for n in ("best.pt", "last.pt", "metrics.csv", "summary.json")):
        return True
    return (d / "config.yaml").is_file() and (d / "plots").is_dir()


def run_file(path: str | Path) -> Path | None:
    """The run directory whose own file `path` is (RUN_FILES there, or any checkpoint), else None."""
    for p in dict.fromkeys((Path(os.path.normpath(path)), _real(path))):
        if p.suffix == ".pt" or (p.name in RUN_FILES and is_run_dir(p.parent)):
            return p.parent
    return None


def _blocking_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of `path` when it is not a folder (nothing can be created under it)."""
    for a in path.parents:
        if a.exists() or a.is_symlink():
            return None if a.is_dir() else a
    return None


def _nearest_existing(path: Path) -> Path:
    for a in (path, *path.parents):
        if a.exists():
            return a
    return Path(".")


def _check_writable(path: Path, option: str) -> None:
    """Refuse a folder (or the folder that would hold a new one) the user cannot write, before any work."""
    base = _nearest_existing(path)
    if base.is_dir() and not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r}: the folder {str(base)!r} is not writable (permission denied)")


Inputs = Sequence[tuple[str | Path, str]]  # (path, what it is: "the config being read", ...)


def _input_hit(path: Path, inputs: Inputs, dirs_too: bool = True) -> tuple[Path, str] | None:
    for p, label in inputs:
        if p is None or not (Path(p).exists() or Path(p).is_symlink()):
            continue
        if same_path(path, p) or (dirs_too and Path(p).is_dir() and inside(path, p)):
            return Path(p), label
    return None


# ---------------------------------------------------------------- the checks
def check_file(path: str | Path, *, option: str = "--out", overwrite: bool = False, own: bool = False,
               inputs: Inputs = (), what: str | None = None, hint: str = "choose another file") -> Path:
    """A file a command is about to write. Refused with one line: a path under a file, a folder, an
    input (always), a run's own file (always), an existing file that is not the command's own (`own`)
    unless `overwrite`, a folder that is not writable. Returns the path."""
    path = Path(path)
    what = what or repr(str(path))
    blocked = _blocking_ancestor(path)
    if blocked is not None:
        raise ConfigError(f"cannot write {what}: {str(blocked)!r} is not a directory")
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a directory; give a file name")
    if path.exists() or path.is_symlink():
        hit = _input_hit(path, inputs, dirs_too=False)
        if hit is not None:
            raise ConfigError(f"{option} {str(path)!r} is {hit[1]}; inputs are never written: {hint}")
        run = run_file(path)
        if run is not None:
            raise ConfigError(f"{option} {str(path)!r} belongs to the run in {str(run)!r}; a run's files are never "
                              f"replaced by another command: {hint}")
        hit = None if own else _input_hit(path, inputs, dirs_too=True)
        if hit is not None:
            raise ConfigError(f"{option} {str(path)!r} is {hit[1]}; inputs are never written: {hint}")
        if not own and not overwrite:
            raise ConfigError(f"{option} {str(path)!r} already exists; pass --overwrite to replace it, or {hint}")
    _check_writable(path.parent, option)
    return path


def numbered_dir(base: str | Path, reuse: Callable[[Path], bool] | None = None) -> Path:
    """`base`, else base-2, base-3, ...: the first that is free (absent, or an empty folder) or that
    `reuse` accepts (an earlier output of this very command, to continue). Neither created nor checked."""
    base = Path(base)
    d, n = base, 2
    while d.exists() and (not d.is_dir() or any(d.iterdir())) and not (reuse is not None and reuse(d)):
        d, n = base.with_name(f"{base.name}-{n}"), n + 1
    return d


def check_dir(path: str | Path, *, option: str = "--out", overwrite: bool = False, own: bool = False,
              inputs: Inputs = (), what: str = "its output", allow_run: bool = False) -> Path:
    """A folder a command writes into (sweep, compare, zoo, lr-find). Refused with one line: a file or a
    path under one, a run directory (unless `allow_run`), a non-empty folder that is not the command's
    own (`own`: it holds the command's marker) unless `overwrite`, and with --overwrite a folder that
    holds one of the command's inputs. Returns the path."""
    d = Path(path)
    blocked = _blocking_ancestor(d)
    if blocked is not None:
        raise ConfigError(f"cannot create {option} {str(d)!r}: {str(blocked)!r} is not a directory")
    hit = _input_hit(d, inputs, dirs_too=True)
    if hit is not None:  # --out is an input itself, or inside an input folder
        where = "is" if same_path(d, hit[0]) else "is inside"
        raise ConfigError(f"{option} {str(d)!r} {where} {hit[1]} ({str(hit[0])!r}); inputs are never written: "
                          f"choose another {option}")
    if (d.exists() or d.is_symlink()) and not d.is_dir():
        raise ConfigError(f"{option} {str(d)!r} exists and is not a directory")
    if not allow_run and is_run_dir(d):
        raise ConfigError(f"{option} {str(d)!r} is a run directory; {what} needs a folder of its own: choose another {option}")
    if d.is_dir() and not own and any(d.iterdir()):
        if not overwrite:
            raise ConfigError(f"{option} {str(d)!r} already exists and is not empty; pass --overwrite to write "
                              f"{what} into it, or choose another {option}")
        held = _held_input(d, inputs)
        if held:
            raise ConfigError(f"{option} {str(d)!r} holds {held[1]} ({str(held[0])!r}); --overwrite never "
                              f"writes where the inputs are: choose another {option}")
    _check_writable(d, option)
    return d


def _held_input(d: Path, inputs: Inputs):
    """The first (path, label) of `inputs` that exists inside folder d, else None."""
    return next(((p, label) for p, label in inputs if p is not None and Path(p).exists() and inside(p, d)), None)


def check_run_dir(d: str | Path, overwrite: bool, inputs: Inputs = ()) -> Path:
    """`train --out DIR`: new, empty, or with --overwrite a folder holding nothing but a run's files
    (those are cleared by clear_run once the run starts) and none of the run's inputs."""
    d = Path(d)
    blocked = _blocking_ancestor(d)
    if blocked is not None:
        raise ConfigError(f"cannot create run directory {str(d)!r}: {str(blocked)!r} is not a directory")
    hit = _input_hit(d, inputs, dirs_too=True)
    if hit is not None:
        where = "is" if same_path(d, hit[0]) else "is inside"
        raise ConfigError(f"--out {str(d)!r} {where} {hit[1]} ({str(hit[0])!r}); a run directory never goes "
                          f"among its inputs: choose another --out")
    if (d.exists() or d.is_symlink()) and not d.is_dir():
        raise ConfigError(f"--out {str(d)!r} exists and is not a directory")
    if d.is_dir() and any(d.iterdir()):
        if not overwrite:
            raise ConfigError(f"run directory {str(d)!r} already exists and is not empty; pass --overwrite or "
                              f"choose another --out")
        held = _held_input(d, inputs)
        if held:
            raise ConfigError(f"--out {str(d)!r} holds {held[1]} ({str(held[0])!r}); --overwrite would clear "
                              f"it: choose another --out")
        unknown = _unknown_entries(d)
        if unknown:
            shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            raise ConfigError(f"--out {str(d)!r} holds files a run does not write ({shown}); --overwrite replaces "
                              f"only a previous run: choose another --out")
    _check_writable(d, "--out")
    return d


def _unknown_entries(d: Path) -> list[str]:
    """Entries of `d` that no run wrote: they are the user's and --overwrite must not clear them."""
    out = []
    for p in sorted(d.iterdir()):
        if p.name.startswith("."):  # temporary files of a killed write, lock files
            continue
        if p.name not in RUN_ENTRIES or (p.is_dir() != (p.name in ("plots", "tensorboard"))) or p.is_symlink():
            out.append(p.name)
        elif p.name == "plots":
            out += [f"plots/{q.name}" for q in sorted(p.iterdir())
                    if q.name[:1] != "." and not (q.is_file() and q.suffix.lower() in PLOT_SUFFIXES)]
        elif p.name == "tensorboard":
            out += [f"tensorboard/{q.name}" for q in sorted(p.iterdir())
                    if not (q.is_file() and q.name.startswith("events.out.tfevents."))]
    return out


def clear_run(d: str | Path) -> list[str]:
    """Remove a previous run's files from `d` before a new run writes there (--overwrite), so that no old
    best.pt, last.pt or metrics.csv is left mixed with the new run's; check_run_dir has already refused
    a folder holding anything else. train.log stays: a sweep appends each attempt of a member to it.
    Returns the names removed."""
    d = Path(d)
    removed = []
    for name in (*RUN_FILES, "report.html"):
        p = d / name
        if p.is_file() or p.is_symlink():
            p.unlink()
            removed.append(name)
    for folder, keep in (("plots", lambda q: q.suffix.lower() in PLOT_SUFFIXES),
                         ("tensorboard", lambda q: q.name.startswith("events.out.tfevents."))):
        if (d / folder).is_dir():
            for q in sorted((d / folder).iterdir()):
                if q.is_file() and keep(q):
                    q.unlink()
                    removed.append(f"{folder}/{q.name}")
    return removed


def config_inputs(cfg, label: str = "the config being read") -> list[tuple[Path, str]]:
    """The files and folders a config reads: its own file, data.path, and data.root for the datasets
    that read it (their description says so, as `dlsem datasets` shows it)."""
    found: list[tuple[Path, str]] = []
    if getattr(cfg, "source", None):
        found.append((Path(cfg.source), label))
    from ..config import SCHEMA

    try:
        from ..registry import DATASETS

        doc = DATASETS.get(cfg["data.name"]).fn.__doc__ or ""
    except Exception:  # not registered yet / unknown: the data step says so with its own error
        doc = ""
    # the schema marks its file and folder keys; data.root has a default every dataset gets, read by few
    keys = [k for k, v in SCHEMA.items() if getattr(v, "path", False)] or ["data.path", "data.image_dir", "data.root"]
    for key in keys:
        if key != "out" and key in SCHEMA and cfg[key] and (key != "data.root" or "data.root" in doc):
            what = "the data being read" if key.startswith("data.") else "a file the config reads"
            found.append((Path(cfg[key]), f"{what} ({key})"))
    return found
