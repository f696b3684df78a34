"""When the Trainer writes last.pt and best.pt, what they hold, and what must wait for them.

The order of one write is fixed: best.pt (when the best weights changed since its last write),
then last.pt, then the metrics.csv rows of the epochs last.pt now holds, then the after_save
hooks. A metrics row is never on disk before the last.pt that holds its epoch, so a run killed at
any moment resumes to the same metrics.csv as one never stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from . import checkpoint as ckpt
from . import distributed

WRITE_RATE = 0.5e9  # bytes/s assumed before the first write (serialise + write + fsync measured ~1 GB/s here)


@dataclass
class FitState:
    """Where a run is: restored from last.pt on --resume."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps so far
    batch_in_epoch: int = 0  # steps already done in epoch+1 (after an interrupt mid-epoch)
    partial_loss: list = field(default_factory=lambda: [0.0, 0])  # [loss sum, samples] of the epoch so far
    nan_skips: int = 0  # steps dropped for a non-finite loss or gradient (train.on_nan: skip)
    diverged: str | None = None  # why a step's loss was not finite (train.on_nan: stop)
    history: list[dict] = field(default_factory=list)
    stop_reason: str | None = None


class CheckpointPolicy:
    """The Trainer's checkpoint methods (a base class of Trainer, whose attributes they use).

    Reads: cfg, model, opt, sched, scaler, es, state, meta, monitor, observers, run_dir, main, dist,
    after_save, _csv (metrics.csv while fit() runs); keeps: _last_write, _write_seconds (how long the
    last write took), _estimate (the first write's duration, guessed from its bytes), _best_dirty
    (the best weights changed since best.pt was written).
    """

    def checkpoint(self, best: bool = False) -> dict:
        """The dict of best.pt (best=True) or last.pt: tensors and primitives only."""
        base = {"format_version": ckpt.FORMAT_VERSION, **self.meta, "monitor": self.monitor}
        if best:
            row = next((r for r in self.state.history if r["epoch"] == self.es.best_epoch), {})
            return {**base, "model": self.es.best_state, "epoch": self.es.best_epoch, "metrics": row}
        s = self.state
        # The best weights go into last.pt only when they are not the weights it already holds:
        # at an epoch end that improved (the usual case) that would be a second copy of the model.
        best_is_current = s.batch_in_epoch == 0 and self.es.best_epoch == s.epoch
        return {**base, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "early_stopping": self.es.state_dict(best_is_current),
                "epoch": s.epoch, "step": s.step, "batch_in_epoch": s.batch_in_epoch,
                "partial_loss": list(s.partial_loss), "nan_skips": s.nan_skips, "history": s.history, "stop_reason": s.stop_reason,
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "rng": ckpt.rng_state(), "metrics": s.history[-1] if s.history else {},
                **({"observers": {ob.name: ob.state_dict() for ob in self.observers}} if self.observers else {})}

    def write_interval(self) -> float:
        """Seconds between periodic writes: checkpoint.min_interval_s, and long enough that writing
        (a large model's last.pt holds weights and optimizer moments: hundreds of MB, fsync'ed)
        takes at most checkpoint.max_overhead of the run's time."""
        share = self.cfg["checkpoint.max_overhead"]
        if not share:
            return self.cfg["checkpoint.min_interval_s"]
        seconds = self._write_seconds
        if not seconds:  # nothing written yet: estimate from the bytes
            if self._estimate is None:  # the sizes do not change once the optimizer has its state
                self._estimate = self.state_bytes() / WRITE_RATE
            seconds = self._estimate
        return max(self.cfg["checkpoint.min_interval_s"], seconds / share)

    def state_bytes(self) -> int:
        """Bytes of tensor data a last.pt write carries (weights, optimizer moments)."""
        tensors = list(self.model.state_dict().values())
        for st in self.opt.state_dict()["state"].values():
            tensors += [v for v in st.values() if isinstance(v, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def save(self, force: bool = False) -> bool:
        """Write last.pt (and best.pt when it changed), at most every write_interval() seconds (rank 0 only)."""
        if not self.main:
            return False
        now = time.perf_counter()
        if not force and now - self._last_write < self.write_interval():
            return False
        if not _finite(self.model):
            return False  # never put non-finite weights on disk; the previous last.pt stays
        if self._best_dirty and self.es.best_state is not None:
            ckpt.save(self.checkpoint(best=True), self.run_dir / "best.pt")
            self._best_dirty = False
        ckpt.save(self.checkpoint(), self.run_dir / "last.pt")
        self._last_write = time.perf_counter()
        self._write_seconds = self._last_write - now
        self._csv.commit()  # the rows of the epochs last.pt now holds, never before
        for hook in list(self.after_save):  # a hook may remove itself
            hook()
        return True

    def restore(self, d: dict) -> None:
        """Continue from a last.pt dict (model, optimizer, schedule, early stopping, RNG, history)."""
        self.model.load_state_dict(d["model"])
        self.opt.load_state_dict(d["optimizer"])
        self.sched.load_state_dict(d["scheduler"])
        self.es.load_state_dict(d["early_stopping"], current=d["model"])
        self.state = FitState(epoch=d["epoch"], step=d["step"], batch_in_epoch=d.get("batch_in_epoch", 0),
                              partial_loss=list(d.get("partial_loss", [0.0, 0])), history=list(d["history"]),
                              nan_skips=d.get("nan_skips", 0))
        if self.scaler is not None and d.get("scaler"):
            self.scaler.load_state_dict(d["scaler"])
        saved = d.get("observers") or {}
        if isinstance(saved, list):  # checkpoints before observers had names held Health's state only
            saved = {"health": saved[0]} if saved else {}
        for ob in self.observers:
            if ob.name in saved:  # one turned on only at this resume starts empty
                ob.load_state_dict(saved[ob.name])
        ckpt.set_rng_state(d["rng"])  # rank 0's: with several processes only rank 0 continues its stream exactly
        if self.dist is not None and self.dist.rank:
            torch.manual_seed(distributed.rank_seed(self.cfg["seed"], self.dist.rank, d["step"]))


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())
