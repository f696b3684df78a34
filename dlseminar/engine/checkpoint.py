"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with weights_only.

A checkpoint is self-describing: it carries the resolved config and the data's
standardisation stats, so `dlsem eval` / `--resume` rebuild everything from it.
"""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import torch

from .. import io
from ..errors import CheckpointError
from ..io import TMP_PREFIX  # noqa: F401  (tests look for leftover temp files by ckpt.TMP_PREFIX)

FORMAT_VERSION = 1


def save(obj: dict, path: str | Path) -> None:
    """Write `obj` to `path` atomically: temp file in the same folder, fsync, rename.

    A reader (or a crash at any moment) sees either the old file or the new one, never half.
    """
    path = Path(path)
    try:
        with io.atomic_open(path, "wb") as f:  # the temp file is removed on any failure; the old file is kept
            torch.save(obj, f)
    except (OSError, RuntimeError) as e:  # disk full, quota, file too large: torch's zip writer raises RuntimeError
        raise CheckpointError(_write_failed(path, e)) from None


def _write_failed(path: Path, e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror
    else:  # torch's zip writer only says where its stream position went wrong
        reason = "the file could not be written in full"
    kept = " (the previous one is kept)" if path.exists() else ""
    return f"cannot write checkpoint {str(path)!r}: {reason}; is the disk full or the folder read-only?{kept}"


def remove_stale_temps(folder: str | Path) -> None:
    """Delete what writes killed half-way left in a run directory: temp files, and the staging folders of
    its plots. Only while holding the directory's lock (runlock): another process's write in progress
    is not stale."""
    from ..runlock import remove_temps

    remove_temps(folder)
    if (Path(folder) / "plots").is_dir():
        remove_temps(Path(folder) / "plots")


def load(path: str | Path) -> dict:
    """Read a dlseminar checkpoint; anything else is a CheckpointError (exit 2) saying what the file is, never code run.

    The file's first bytes are checked before torch.load sees it (a picture, text, a pickle, TorchScript, ...);
    what torch.load then refuses is named in a few words (truncated, or holding pickled classes).
    """
    from .filekind import load_failed, not_torch

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} not found")
    if p.is_dir():
        hint = " (did you mean best.pt or last.pt inside it?)" if (p / "best.pt").exists() or (p / "last.pt").exists() else ""
        raise CheckpointError(f"{str(p)!r} is a directory, not a checkpoint file{hint}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(p)!r} is empty (0 bytes)")
    try:
        why = not_torch(p)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {str(p)!r}: {e.strerror or e}") from None
    if why:
        raise CheckpointError(f"{str(p)!r} {why}")
    try:
        with warnings.catch_warnings():  # torch warns at length about refused pickles; we say it in one line
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except MemoryError:
        raise CheckpointError(f"{str(p)!r} ({p.stat().st_size / 1e9:.1f} GB) does not fit in this machine's memory") from None
    except Exception as e:  # any parse failure means "not a checkpoint we can trust"
        raise CheckpointError(f"{str(p)!r} {load_failed(e)}") from None
    check_contents(obj, str(p))
    return obj


# Every checkpoint dlsem train writes holds these; a last.pt (one with an optimizer) also the RESUME keys.
REQUIRED = ("format_version", "config", "model", "data_info", "data_stats")
RESUME = ("scheduler", "early_stopping", "epoch", "step", "history", "rng")


def check_contents(obj, name: str) -> None:
    """A loaded file is a whole dlseminar checkpoint of a format this version reads, else one CheckpointError."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{name!r} holds a {type(obj).__name__}, not a dlseminar checkpoint")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{name!r} holds bare model weights (a state_dict), not a dlseminar checkpoint; "
                              f"give the best.pt or last.pt that dlsem train wrote")
    missing = [k for k in REQUIRED[:3] if k not in obj]
    if missing:
        keys = ", ".join(map(str, list(obj)[:5])) + (", ..." if len(obj) > 5 else "")
        raise CheckpointError(f"{name!r} is a PyTorch file but not a dlseminar checkpoint: it holds no "
                              f"{missing[0]!r} (its keys: {keys or 'none'})")
    v = obj["format_version"]
    if not isinstance(v, int) or isinstance(v, bool):
        raise CheckpointError(f"{name!r} has an invalid format_version ({v!r}); it is not a dlseminar checkpoint")
    if v > FORMAT_VERSION:
        raise CheckpointError(f"{name!r} was written by a newer dlseminar (checkpoint format {v}; this one reads up "
                              f"to {FORMAT_VERSION}): upgrade dlseminar")
    want = [*REQUIRED[3:], *(RESUME if "optimizer" in obj else ())]
    missing = [k for k in want if k not in obj]
    if missing:
        raise CheckpointError(f"{name!r} holds no {missing[0]!r}: it was not written by dlsem train (or was edited)")
    damaged = _damaged(obj)
    if damaged:
        raise CheckpointError(f"{name!r} holds a damaged {damaged}: it was not written by dlsem train (or was edited)")


def _damaged(obj: dict) -> str | None:
    """The first entry whose type is not what dlsem train writes (they are used without further checks)."""
    info = obj["data_info"]
    if not isinstance(obj["config"], dict):
        return "'config' (not a mapping)"
    if not isinstance(obj["model"], dict) or not all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                                     for k, t in obj["model"].items()):
        return "'model' (not a mapping of layer names to tensors)"
    if not isinstance(info, dict) or not isinstance(info.get("name"), str) or not isinstance(info.get("kind"), str):
        return "'data_info' (no dataset name or kind)"
    shape = info.get("in_shape")
    if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(n, int) and n > 0 for n in shape):
        return f"'data_info' (input shape {shape!r})"
    if not isinstance(info.get("num_classes", 0), int) or not isinstance(info.get("class_names", []), list):
        return "'data_info' (classes)"
    if not isinstance(obj["data_stats"], dict):
        return "'data_stats' (not a mapping)"
    if "optimizer" in obj:
        if not isinstance(obj["optimizer"], dict) or not isinstance(obj["rng"], dict):
            return "'optimizer' or 'rng' (not a mapping)"
        if not all(isinstance(obj[k], int) and not isinstance(obj[k], bool) for k in ("epoch", "step")):
            return "'epoch' or 'step' (not a whole number)"
        if not isinstance(obj["history"], list):
            return "'history' (not a list)"
    return None


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as tensors, so weights_only loads them."""
    import numpy as np

    _, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_gauss": None if py_gauss is None else float(py_gauss),  # cached 2nd normal of random.gauss
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],  # has_gauss, cached_gaussian
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    import numpy as np

    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), state.get("python_gauss")))
    has_gauss, cached = state.get("numpy_gauss", [0, 0.0])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
