"""SIGINT and SIGTERM while the Trainer fits: recorded, then acted on between optimizer steps.

A signal handler that wrote a checkpoint itself could catch the optimizer half-way through a
step; this one only notes the signal, and the loop writes last.pt at the next step boundary.
"""
from __future__ import annotations

import signal
import threading


class Signals:
    """A context manager that holds SIGINT/SIGTERM for one fit() and restores the old handlers.

    `received` is the first signal that arrived (None: none). A second Ctrl-C leaves at once
    (KeyboardInterrupt): last.pt on disk is always whole, its writes are atomic. Outside the main
    thread Python cannot install handlers, and this does nothing.
    """

    def __init__(self):
        self.received: int | None = None
        self._old: dict = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            for sig in self._old:
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> bool:
        old, self._old = self._old, {}
        for sig, h in old.items():
            signal.signal(sig, h)
        return False

    def _handler(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: leave now
        self.received = signum
