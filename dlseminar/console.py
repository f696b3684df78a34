"""Terminal output helpers: notes on stderr, and whether stdout is an interactive terminal."""
from __future__ import annotations

import sys


def note(msg: str) -> None:
    """A one-line remark for the user that is not an error (stderr, so --json stays clean)."""
    print(f"note: {msg}", file=sys.stderr, flush=True)


def interactive() -> bool:
    return sys.stdout.isatty()
