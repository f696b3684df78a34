"""Pieces every benchmark script uses: checkpoint-write accounting, weight comparison, report-don't-gate exit."""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from dlseminar.engine import checkpoint as ckpt


class CheckpointCounter:
    """Wraps dlseminar.engine.checkpoint.save to count the files written, their bytes and the time spent."""

    def __init__(self):
        self.orig = ckpt.save
        self.files: list[str] = []
        self.seconds = 0.0
        self.bytes = 0

    def __call__(self, obj, path):
        t0 = time.perf_counter()
        self.orig(obj, path)
        self.seconds += time.perf_counter() - t0
        self.files.append(Path(path).name)
        self.bytes += Path(path).stat().st_size

    def reset(self):
        self.files, self.seconds, self.bytes = [], 0.0, 0


def max_weight_diff(a, b) -> float:
    """Largest |difference| between two models' parameters and buffers (0.0: identical)."""
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def run(main, name: str) -> None:
    """Run a benchmark's main(); a benchmark reports, it does not gate: always exit 0."""
    try:
        main()
    except Exception:
        traceback.print_exc()
        print(f"{name}: failed (see above); exiting 0 as benchmarks do not gate", file=sys.stderr)
    sys.exit(0)
