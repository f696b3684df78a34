"""The one training loop for every task.

It knows optimisation only: steps, penalties, clipping, the lr schedule, early stopping,
checkpoints and logs. What a batch holds and how it is scored is the Task's business.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import Interrupted
from . import checkpoint as ckpt
from .callbacks import ConsoleLog, EarlyStopping, MetricsCSV


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


def _weight_params(model: torch.nn.Module) -> list[torch.Tensor]:
    """Weights that the L1/L2 penalties act on: matrices and kernels, not biases or norm scales."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim > 1]


class Trainer:
    def __init__(self, model, task, optimizer, schedule, device, cfg, run_dir: Path, ckpt_meta: dict):
        self.model, self.task, self.opt, self.sched = model, task, optimizer, schedule
        self.device, self.cfg, self.run_dir, self.meta = device, cfg, Path(run_dir), ckpt_meta
        self.l1, self.l2 = cfg["loss.l1"], cfg["loss.l2"]
        self.weights = _weight_params(model) if (self.l1 or self.l2) else []
        self.clip = cfg["train.grad_clip"]
        monitor = cfg["early_stop.monitor"]
        self.monitor = task.monitor if monitor == "auto" else monitor
        mode = cfg["early_stop.mode"]
        self.mode = mode if mode != "auto" else ("min" if self.monitor.endswith("loss") or self.monitor.split("/")[-1] in ("mse", "mae", "rmse") else "max")
        self.es = EarlyStopping(self.monitor, self.mode, cfg["early_stop.patience"], cfg["early_stop.min_delta"])
        self.state = FitState()
        self._signal: int | None = None
        self._last_write = -math.inf
        self._write_seconds = 0.0  # how long the last checkpoint write took (spaces the next one)
        self._best_dirty = False  # best weights changed since best.pt was written

    # ------------------------------------------------------------------ steps
    def penalty(self) -> torch.Tensor | float:
        """lambda1 * sum|W| + lambda2 * sum W^2 over weights (biases excluded)."""
        total = 0.0
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in self.weights)
        if self.l2:
            total = total + self.l2 * sum(w.pow(2).sum() for w in self.weights)
        return total

    def train_epoch(self, loader, skip: int = 0) -> bool:
        """One pass over `loader` after `skip` batches (those a resumed run already did).

        The epoch's loss sum and sample count accumulate in self.state.partial_loss, one step at
        a time in a fixed order, so an epoch cut by a checkpoint and resumed adds up to exactly
        the same float as an uninterrupted one. Returns True when the pass finished; False when
        a signal or a non-finite loss (train.on_nan: stop) ended it early.
        """
        model, task, opt, sched, s = self.model, self.task, self.opt, self.sched, self.state
        model.train()
        penalize, clip, per_step = bool(self.weights), self.clip, sched.per_step
        every = self.cfg["checkpoint.every_n_steps"]
        skip_nan = self.cfg["train.on_nan"] == "skip"
        acc = torch.tensor(s.partial_loss[0], dtype=torch.float64, device=self.device)
        count = s.partial_loss[1]
        for i, batch in enumerate(loader):
            if i < skip:
                continue
            loss, n = task.training_step(model, batch)
            total = loss + self.penalty() if penalize else loss
            # non-finite loss: caught before it reaches the weights (one host sync per step)
            bad = not bool(torch.isfinite(total))
            if not bad:
                opt.zero_grad(set_to_none=True)
                total.backward()
                if skip_nan:  # the loss can be finite while a gradient overflows
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf)
                    bad = not bool(torch.isfinite(norm))
                elif clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if bad and not skip_nan:
                s.diverged = f"the training loss is not finite at epoch {s.epoch + 1}, step {i + 1}"
                s.partial_loss = [float(acc), count]
                return False
            if bad:
                s.nan_skips += 1  # the step is dropped: no update, no lr step, no loss counted
                opt.zero_grad(set_to_none=True)
            else:
                opt.step()
                if per_step:
                    sched.step()
                s.step += 1
                acc += loss.detach().double() * n
                count += n
            if self._signal is not None or (every and not bad and s.step % every == 0):
                s.partial_loss, s.batch_in_epoch = [float(acc), count], i + 1
                if self._signal is not None:
                    return False
                self.save(force=True)  # a step-level checkpoint: resume continues after batch i
                s.batch_in_epoch = 0
        s.partial_loss = [float(acc), count]
        return True

    def evaluate(self, loader):
        return evaluate(self.model, self.task, loader, self.device)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, best: bool = False) -> dict:
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
                "rng": ckpt.rng_state(), "metrics": s.history[-1] if s.history else {}}

    def write_interval(self) -> float:
        """Seconds between periodic writes: checkpoint.min_interval_s, and long enough that writing
        (a large model's last.pt holds weights and optimizer moments: hundreds of MB, fsync'ed)
        takes at most checkpoint.max_overhead of the run's time."""
        share = self.cfg["checkpoint.max_overhead"]
        if not share:
            return self.cfg["checkpoint.min_interval_s"]
        seconds = self._write_seconds
        if not seconds:  # nothing written yet: assume 0.5 GB/s (serialise + write + fsync measured ~1 GB/s here)
            seconds = self.state_bytes() / 0.5e9
        return max(self.cfg["checkpoint.min_interval_s"], seconds / share)

    def state_bytes(self) -> int:
        """Bytes of tensor data a last.pt write carries (weights, optimizer moments)."""
        tensors = list(self.model.state_dict().values())
        for st in self.opt.state_dict()["state"].values():
            tensors += [v for v in st.values() if isinstance(v, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def save(self, force: bool = False) -> bool:
        """Write last.pt (and best.pt when it changed), at most every write_interval() seconds."""
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
        ckpt.set_rng_state(d["rng"])

    # ------------------------------------------------------------------ the loop
    def fit(self, train_loader, val_loader, epochs: int) -> FitState:
        s = self.state
        csv_log = MetricsCSV(self.run_dir / "metrics.csv", s.history)
        keys = list(dict.fromkeys(["train/loss", "val/loss", self.task.monitor, self.monitor]))
        console = ConsoleLog(epochs, s.epoch, self.cfg["logging.every_epochs"], keys)
        old = self._install_signals()
        # the first periodic write comes min_interval_s after the start (end and interrupt writes are forced)
        self._last_write = time.perf_counter()
        try:
            for epoch in range(s.epoch + 1, epochs + 1):
                t0 = time.perf_counter()
                train_loader.set_epoch(epoch)
                skip, s.batch_in_epoch = s.batch_in_epoch, 0
                finished = self.train_epoch(train_loader, skip)
                if not finished and s.diverged is None:  # a signal: keep the partial epoch and leave
                    self.save(force=True)
                    raise Interrupted(self._signal, self.run_dir / "last.pt")
                loss_sum, n = s.partial_loss
                s.partial_loss, s.batch_in_epoch = [0.0, 0], 0
                val = self.evaluate(val_loader).compute()
                row = {"epoch": epoch, "lr": self.sched.lr,
                       "train/loss": float(loss_sum) / max(n, 1) if s.diverged is None else math.nan}
                if self.cfg["train.on_nan"] == "skip":
                    row["train/skipped_steps"] = s.nan_skips
                row.update({f"train/{k}": v for k, v in self.task.train_logs().items()})  # e.g. loss parts
                row.update({f"val/{k}": v for k, v in val.items()})
                row["seconds"] = time.perf_counter() - t0
                s.history.append(row)
                s.epoch = epoch
                reason = None
                if s.diverged is not None:
                    reason = f"{s.diverged}: training diverged (try a lower optim.lr, train.grad_clip or train.on_nan: skip)"
                elif n == 0:
                    reason = f"every step of epoch {epoch} had a non-finite loss or gradient: training diverged (try a lower optim.lr)"
                elif not math.isfinite(row["train/loss"]):
                    reason = f"training loss is not finite at epoch {epoch}: training diverged (try a lower optim.lr)"
                reason = reason or self.es.update(epoch, row, self.model)
                self._best_dirty = self._best_dirty or self.es.improved
                self.sched.epoch_end(row.get(self.monitor), self.mode)
                csv_log.write(row)
                last = reason is not None or epoch == epochs
                console.epoch(row, last)
                if last:
                    s.stop_reason = reason or f"reached train.epochs ({epochs})"
                self.save(force=last)
                if self._signal is not None:
                    self.save(force=True)
                    raise Interrupted(self._signal, self.run_dir / "last.pt")
                if last:
                    break
            if s.stop_reason is None:  # resumed a run that had already finished
                s.stop_reason = f"reached train.epochs ({epochs})"
        finally:
            console.close()
            csv_log.close()
            self._restore_signals(old)
        return s

    def _install_signals(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: leave now; last.pt is whole (atomic writes)
            self._signal = signum

        old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in old:
            signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signals(old) -> None:
        for sig, h in (old or {}).items():
            signal.signal(sig, h)


@torch.inference_mode()
def evaluate(model, task, loader, device):
    """Task metrics over a whole split in eval mode (the metrics object, for details)."""
    model.eval()
    metrics = task.new_metrics(device)
    for batch in loader:
        task.eval_step(model, batch, metrics)
    return metrics


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())
