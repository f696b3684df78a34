"""Terminal output helpers: notes on stderr, and whether stdout is an interactive terminal."""
from __future__ import annotations

import os
import sys


def note(msg: str) -> None:
    """A one-line remark for the user that is not an error (stderr, so --json stays clean).

    Under torchrun only rank 0 says it (every process builds the same run and would repeat it)."""
    if os.environ.get("RANK", "0") != "0":
        return
    print(f"note: {msg}", file=sys.stderr, flush=True)


def interactive() -> bool:
    return sys.stdout.isatty()
