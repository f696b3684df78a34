"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with weights_only.

A checkpoint is self-describing: it carries the resolved config and the data's
standardisation stats, so `dlsem eval` / `--resume` rebuild everything from it.
"""
from __future__ import annotations

import os
import random
import tempfile
import warnings
from pathlib import Path

import torch

from ..errors import CheckpointError

FORMAT_VERSION = 1
TMP_PREFIX = ".tmp-"


def save(obj: dict, path: str | Path) -> None:
    """Write `obj` to `path` atomically: temp file in the same folder, fsync, rename.

    A reader (or a crash at any moment) sees either the old file or the new one, never half.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    except OSError as e:
        raise CheckpointError(_write_failed(path, e)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # disk full, quota, file too large: torch's zip writer raises RuntimeError
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(_write_failed(path, e)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _write_failed(path: Path, e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror
    else:  # torch's zip writer only says where its stream position went wrong
        reason = "the file could not be written in full"
    kept = " (the previous one is kept)" if path.exists() else ""
    return f"cannot write checkpoint {str(path)!r}: {reason}; is the disk full or the folder read-only?{kept}"


def remove_stale_temps(folder: str | Path) -> None:
    """Delete temp files left by a write that was killed half-way."""
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        p.unlink(missing_ok=True)


def load(path: str | Path) -> dict:
    """Read a dlseminar checkpoint; anything else is a CheckpointError (exit 2), never code run."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} not found")
    if p.is_dir():
        hint = " (did you mean best.pt or last.pt inside it?)" if (p / "best.pt").exists() or (p / "last.pt").exists() else ""
        raise CheckpointError(f"{str(p)!r} is a directory, not a checkpoint file{hint}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(p)!r} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # torch warns at length about refused pickles; we say it in one line
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # any parse failure means "not a checkpoint we can trust"
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{str(p)!r} is not a readable dlseminar checkpoint ({reason})") from None
    if not isinstance(obj, dict) or "format_version" not in obj or "config" not in obj or "model" not in obj:
        raise CheckpointError(f"{str(p)!r} is a PyTorch file but not a dlseminar checkpoint (no format_version/config/model)")
    v = obj["format_version"]
    if not isinstance(v, int) or isinstance(v, bool):
        raise CheckpointError(f"{str(p)!r} has an invalid format_version ({v!r}); it is not a dlseminar checkpoint")
    if v > FORMAT_VERSION:
        raise CheckpointError(f"{str(p)!r} has format {obj['format_version']}; this dlseminar reads up to {FORMAT_VERSION}: upgrade it")
    return obj


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
