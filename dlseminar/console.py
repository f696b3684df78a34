"""Terminal output helpers: notes on stderr, and whether stdout is an interactive terminal."""
from __future__ import annotations

import os
import sys


def note(msg: str) -> None:
    """A one-line remark for the user that is not an error (stderr, so --json stays clean).

    Under torchrun only rank 0 says it (every process builds the same run and would repeat it)."""
    if not talks():
        return
    print(f"note: {msg}", file=sys.stderr, flush=True)


def talks() -> bool:
    """Whether this process speaks to the user: the only one, or rank 0 of the processes torchrun started.

    RANK counts only with a WORLD_SIZE above 1 and a MASTER_ADDR (torchrun sets all three): a RANK left over
    in a shell must not silence the errors of a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    return world <= 1 or not os.environ.get("MASTER_ADDR") or os.environ.get("RANK", "0") == "0"


def interactive() -> bool:
    return sys.stdout.isatty()
