"""Python's cyclic garbage collector during start-up: held off while the libraries load, then told
that everything loaded so far is permanent.

Importing torch (and numpy, matplotlib, ...) creates a few hundred thousand long-lived objects.
Left alone, the collector walks all of them again and again while they load, and then at every
full collection during training, although none of them will ever be garbage. A CLI process
therefore holds the collector off from its first line (`hold`) until its model is built
(`settle`): then `gc.freeze()` moves every object alive at that point into the permanent
generation, which later collections skip, and the collector runs as usual on what training
creates. `release` at the end of a command undoes both, so a process that runs several commands
(the tests) can still collect the first command's cycles. Weights and results do not depend on it
(the collector frees memory; it decides nothing); benchmarks/startup.py measures what it saves.
"""
from __future__ import annotations

import gc

_held = False


def hold() -> None:
    """At the start of a command: no cyclic collections while the libraries load."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def settle() -> None:
    """Once the run's pieces are built: freeze what exists (the libraries) and collect as usual."""
    global _held
    if _held:
        gc.freeze()
        gc.enable()
        _held = False


def release() -> None:
    """At the end of a command: the collector back as it was, frozen objects collectable again."""
    global _held
    if _held:
        gc.enable()
        _held = False
    gc.unfreeze()
