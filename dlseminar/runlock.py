"""Guards for writing a run (or sweep) directory: one writer at a time, and no half-written files.

The lock is an OS file lock (flock) on `.lock` inside the directory, holding the writer's pid and
command line. The kernel drops it when the process ends, however it ends (also SIGKILL), so a
crashed run never blocks the next one. A second process that wants the same directory (another
`train --out` with or without --overwrite, a `--resume` of a run being trained, a second sweep
into the same --out) is refused with one line naming the holder.

The lock file exists only while a process holds it: the holder deletes it when it lets go (a
killed holder leaves it, naming a dead process, and the next taker reuses it). Taking the lock
checks that the file locked is still the one at `.lock`, so a file deleted by its holder in the
meantime is never mistaken for the lock.

Atomic writes (temp file, fsync, rename, no temp left on failure) are io/atomic.py's.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

LOCK_NAME = ".lock"
COMMAND: str | None = None  # the command line the CLI runs (set by cli.main), shown to a refused process

_held: dict[str, tuple[int, Path]] = {}  # resolved directory -> (descriptor, lock file), for this process


class InUse(UserError):
    """Another process writes the directory."""


def _command() -> str:
    text = COMMAND or " ".join(shlex.quote(a) for a in sys.argv)
    return text if len(text) <= 120 else text[:117] + "..."


def _holder(path: Path) -> str:
    """'process 123 (dlsem train ...)' from the lock file; the holder writes it just after taking the lock."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        pid, _, cmd = text.partition("\n")
        if pid.strip().isdigit():
            return f"process {pid.strip()}" + (f" ({cmd.strip()})" if cmd.strip() else "")
        time.sleep(0.025)
    return "another process"


def acquire(folder: str | Path, what: str = "run directory", hint: str = "wait for it or choose another --out") -> None:
    """Lock `folder` (which must exist) for this process; InUse (exit 2) when another process holds it.

    Held until release(folder) or the process ends. Taking a lock this process already holds is
    refused too: two writers in one process interleave their files just the same."""
    folder = Path(folder)
    key = str(folder.resolve())
    path = Path(key) / LOCK_NAME  # absolute: release() may come after a change of directory
    if key in _held:
        raise InUse(f"{what} {str(folder)!r} is in use by this process ({os.getpid()}); {hint}")
    if fcntl is None:
        return
    deadline = time.monotonic() + 0.5  # holder() looks for a few microseconds: a moment's patience
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot lock {what} {str(folder)!r}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise InUse(f"{what} {str(folder)!r} is in use by {_holder(path)}; {hint}") from None
        except OSError:  # a file system without flock (some network mounts): go on unlocked
            os.close(fd)
            return
        if _same_file(fd, path):
            break
        os.close(fd)  # its holder deleted it as we opened it: lock the file that is there now
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{_command()}\n".encode("utf-8", "replace"))
    except OSError:  # a full disk: the lock holds all the same, only the holder's name is missing
        pass
    _held[key] = (fd, path)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def holder(folder: str | Path) -> str | None:
    """'process 123 (dlsem ...)' when another process holds the lock of `folder`, else None.

    Looks without taking the lock for longer than a moment, and creates nothing."""
    if fcntl is None:
        return None
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def release(folder: str | Path) -> None:
    """Give the lock of `folder` back (a no-op when this process does not hold it)."""
    held = _held.pop(str(Path(folder).resolve()), None)
    if held is None:
        return
    fd, path = held
    try:
        if _same_file(fd, path):
            os.unlink(path)  # while still held: a process that opened it meanwhile sees it gone and retries
    except OSError:
        pass
    os.close(fd)  # closing the descriptor drops the flock


@contextlib.contextmanager
def locked(folder: str | Path, what: str = "run directory", hint: str = "wait for it or choose another --out"):
    """acquire() for the duration of a with-block."""
    acquire(folder, what, hint)
    try:
        yield Path(folder)
    finally:
        release(folder)


def release_all() -> None:
    """Give back every lock this process holds (the CLI does, when a command ends)."""
    for key in list(_held):
        release(key)


def remove_temps(folder: str | Path) -> None:
    """Delete what killed writes left in `folder` (`.tmp-*` files and staging folders); call it only
    while holding the folder's lock, so that no other process's write in progress is removed."""
    for p in Path(folder).glob(".tmp-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
