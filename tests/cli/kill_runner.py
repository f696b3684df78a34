"""Run `dlsem ARGS...` and SIGKILL the process at one chosen point (used by test_kill_resume.py).

    python kill_runner.py WHERE:K ARGS...

WHERE is where the K-th event kills it, from inside, with a real SIGKILL (no handler runs,
no file is closed, nothing is flushed by Python):
  step     at the start of the K-th training step (mid-epoch, between optimizer steps)
  eval     in the K-th validation batch
  write    half-way through writing the K-th checkpoint file (a temp file is left behind)
  replace  just after the K-th checkpoint file was renamed into place
  any      at the K-th of all the events above and of the metrics.csv commits (just after one),
           so that a random K lands anywhere in the run
"""
from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    where, k = sys.argv[1].split(":")
    k = int(k)
    seen = {"n": 0}

    def hit() -> None:
        seen["n"] += 1
        if seen["n"] == k:
            os.kill(os.getpid(), signal.SIGKILL)

    from dlseminar.engine import checkpoint as ckpt
    from dlseminar.tasks.base import Task

    if where == "any":
        _count_everything(hit)
    elif where == "step":
        orig_step = Task.training_step

        def training_step(self, model, batch):
            hit()
            return orig_step(self, model, batch)

        Task.training_step = training_step
    elif where == "eval":
        orig_eval = Task.eval_step

        def eval_step(self, model, batch, metrics):
            hit()
            return orig_eval(self, model, batch, metrics)

        Task.eval_step = eval_step
    elif where == "write":
        import torch

        real_save = torch.save

        def half_save(obj, f, *a, **kw):
            if seen["n"] + 1 == k and hasattr(f, "write"):
                import io

                buf = io.BytesIO()
                real_save(obj, buf, *a, **kw)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
            hit()
            return real_save(obj, f, *a, **kw)

        ckpt.torch.save = half_save
    elif where == "replace":
        real_replace = os.replace

        def replace(a, b):
            real_replace(a, b)
            hit()

        os.replace = replace
    else:
        raise SystemExit(f"unknown kill point {where!r}")

    from dlseminar.cli import main as dlsem

    sys.argv = ["dlsem", *sys.argv[2:]]
    dlsem()


def _count_everything(hit) -> None:
    """hit() at every training step, validation batch, checkpoint write and rename, and metrics commit."""
    from dlseminar.engine import checkpoint as ckpt
    from dlseminar.engine.callbacks import MetricsCSV
    from dlseminar.tasks.base import Task

    def before(fn):
        def wrapped(*a, **kw):
            hit()
            return fn(*a, **kw)
        return wrapped

    def after(fn):
        def wrapped(*a, **kw):
            out = fn(*a, **kw)
            hit()
            return out
        return wrapped

    Task.training_step = before(Task.training_step)
    Task.eval_step = before(Task.eval_step)
    ckpt.torch.save = before(ckpt.torch.save)
    os.replace = after(os.replace)
    MetricsCSV.commit = after(MetricsCSV.commit)


if __name__ == "__main__":
    main()
