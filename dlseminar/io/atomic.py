"""Atomic file writes: the file appears at its path complete, or not at all.

Every file is written to a temporary file in the same folder (`.tmp-...`, so a killed write
leaves a name the harness and `remove_stale_temps` recognise), flushed to disk, then renamed over
the target with os.replace. A reader, or a crash at any moment, sees the old file or the new one,
never half; the temporary file is removed on any failure, Ctrl-C included.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path` for a writer that wants a file name (savefig, PIL);
    when the block ends, the file is flushed to disk and renamed onto `path`; on any error (Ctrl-C
    too) it is removed and `path` is left as it was. The temporary name keeps the suffix, so writers
    that infer the format from it still do."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a config or report from the group
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """open() for writing, atomically: the file appears at `path` complete, or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Path.write_text, atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Path.write_bytes, atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (not possible on every system: best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
