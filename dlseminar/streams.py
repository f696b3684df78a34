"""stdout and stderr of a command, safe to write whatever the shell did with them.

- Closed at start (`dlsem train >&-`, `2>&-`): file descriptors 0-2 are pointed at os.devnull
  before anything else is opened, so the next file the run opens (a checkpoint, the lock) never
  becomes "stdout" and never receives a print or a C library's message.
- A reader that goes away (`dlsem train | head -1`): the write that meets the broken pipe points
  the descriptor at os.devnull (the recipe of Python's signal documentation) and the command goes
  on quietly to its end: no traceback, no "Exception ignored ... BrokenPipeError" at exit.
- An encoding that cannot show a character (PYTHONIOENCODING=ascii, a run named 'müll'): the
  character is replaced, never a UnicodeEncodeError.
- COLUMNS or TERMINAL_WIDTH that is not a positive number (0, abc) is ignored (drop_bad_widths).
- Into a file or a pipe, rich output never wraps at COLUMNS (or 80): console() gives it no width
  limit there, so one epoch, one summary line or one table row stays one line of the log.
"""
from __future__ import annotations

import contextlib
import os
import sys

NOT_A_TERMINAL_WIDTH = 10_000  # wide enough that no table or line of ours wraps, small enough to lay out fast


class Guarded:
    """A text stream whose writes never raise for a vanished reader or an unencodable character."""

    def __init__(self, stream):
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if self._gone:
            return len(text)
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            enc = getattr(self._stream, "encoding", None) or "ascii"
            try:
                text = text.encode(enc, "replace").decode(enc, "replace")
            except LookupError:
                text = text.encode("ascii", "replace").decode("ascii")
            return self.write(text)
        except (OSError, ValueError):  # EPIPE, EIO of a closed terminal, a closed file
            self._silence()
            return len(text)

    def flush(self) -> None:
        if self._gone:
            return
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self._silence()

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        try:
            return not self._gone and self._stream.isatty()
        except (OSError, ValueError, AttributeError):
            return False

    def _silence(self) -> None:
        """From now on, drop what is written. The descriptor gets os.devnull, so that what the stream
        still buffers (flushed at exit) goes there too instead of failing again."""
        self._gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)

    def __getattr__(self, name):  # encoding, fileno, buffer, ...: the stream's own
        return getattr(self._stream, name)


def _open_std_fds() -> None:
    """Point any of descriptors 0-2 that the process started without at os.devnull."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


@contextlib.contextmanager
def guarded():
    """sys.stdout and sys.stderr as Guarded streams for the duration of a command (then the old ones)."""
    _open_std_fds()
    old = sys.stdout, sys.stderr
    out = Guarded(sys.stdout if sys.stdout is not None else open(os.devnull, "w", encoding="utf-8"))
    err = Guarded(sys.stderr if sys.stderr is not None else open(os.devnull, "w", encoding="utf-8"))
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        out.flush()  # what is still buffered, while a broken pipe is still caught
        err.flush()
        if sys.stdout is out:
            sys.stdout = old[0] if old[0] is not None else out
        if sys.stderr is err:
            sys.stderr = old[1] if old[1] is not None else err


WIDTH_VARIABLES = ("COLUMNS", "TERMINAL_WIDTH")  # rich reads the first, typer's help the second


def drop_bad_widths() -> None:
    """Forget a terminal width that is not a positive whole number: COLUMNS=0 makes rich print nothing at
    all (not even --help), TERMINAL_WIDTH=abc makes typer's help raise. The terminal's own width applies."""
    for var in WIDTH_VARIABLES:
        value = os.environ.get(var)
        if value is not None and not (value.isdigit() and int(value) > 0):
            del os.environ[var]


def is_terminal(stream=None) -> bool:
    """Whether `stream` (stdout) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream is not None and stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


def console(**kwargs):
    """A rich Console for stdout: the terminal's width on a terminal; in a file or a pipe, no wrapping
    whatever COLUMNS says (a log keeps one line per line written)."""
    from rich.console import Console

    if not is_terminal():
        kwargs.setdefault("width", NOT_A_TERMINAL_WIDTH)
        kwargs.setdefault("soft_wrap", True)
    return Console(**kwargs)
