"""The one training loop for every task.

It knows optimisation only: steps, penalties, clipping, accumulation, mixed precision, the lr
schedule, early stopping, checkpoints, logs and DDP. What a batch holds and how it is scored is
the Task's business.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, Interrupted
from . import amp
from . import checkpoint as ckpt
from . import distributed
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


class _Silent:
    """The console and CSV logs of a rank other than 0: only rank 0 talks and writes."""

    def write(self, row):
        pass

    def commit(self):
        pass

    def epoch(self, row, last):
        pass

    def close(self):
        pass


class Trainer:
    """`model` is the plain module (its state_dict is what checkpoints hold); `dist` is this process's
    place among several (distributed.init) or None. The steps call self.net: the model, in
    DistributedDataParallel under torchrun and compiled with train.compile."""

    def __init__(self, model, task, optimizer, schedule, device, cfg, run_dir: Path, ckpt_meta: dict,
                 dist: distributed.Dist | None = None, observers=()):
        self.model, self.task, self.opt, self.sched = model, task, optimizer, schedule
        self.device, self.cfg, self.run_dir, self.meta = device, cfg, Path(run_dir), ckpt_meta
        self.l1, self.l2 = cfg["loss.l1"], cfg["loss.l2"]
        self.weights = _weight_params(model) if (self.l1 or self.l2) else []
        self.clip = cfg["train.grad_clip"]
        self.monitor, self.mode = task.monitor_mode(cfg)  # the task's metric and direction, never a guess from a name
        self.es = EarlyStopping(self.monitor, self.mode, cfg["early_stop.patience"], cfg["early_stop.min_delta"])
        self.state = FitState()
        self._signal: int | None = None
        self._last_write = -math.inf
        self._write_seconds = 0.0  # how long the last checkpoint write took (spaces the next one)
        self._estimate: float | None = None  # the first write's duration, guessed from its bytes
        self._best_dirty = False  # best weights changed since best.pt was written
        self._csv = _Silent()  # metrics.csv while fit() runs: its rows follow each last.pt write
        # called (rank 0) after each last.pt write, once the checkpoint holds the run's newest state:
        # what must never be ahead of last.pt is written here (run.py: config.yaml on a resume)
        self.after_save: list = []
        self.dist, self.main = dist, dist is None or dist.main
        self.accumulate = cfg["train.accumulate"]
        self.autocast = amp.autocast_args(cfg["train.precision"], device)  # None for 32: no per-step cost
        self.scaler = amp.make_scaler(cfg["train.precision"], device)  # fp16 only
        self.net = self._prepare(model)
        # observers (observers.py: health, decision-boundary frames, TensorBoard): step_end after each
        # optimizer step (only those that ask), epoch_end after each epoch's validation, and their
        # state_dict() carried in last.pt by name
        self.observers = list(observers)
        self._step_observers = [ob for ob in self.observers if ob.wants_steps]

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """What the training steps call. Parameters stay the same objects (the optimizer holds them)."""
        cfg, net = self.cfg, model
        self.ddp = None
        if cfg["train.channels_last"]:
            model.to(memory_format=torch.channels_last)  # 4-D conv weights; convolutions then keep NHWC activations
            model.register_forward_pre_hook(_nhwc_inputs)  # and the images arrive NHWC (the batch itself is not read)
        if self.dist is not None:
            net = self.ddp = distributed.wrap(model, self.device, cfg["train.sync_batchnorm"])
            if self.dist.rank:  # its own dropout masks; rank 0 keeps the stream a checkpoint stores
                torch.manual_seed(distributed.rank_seed(cfg["seed"], self.dist.rank))
        if cfg["train.compile"]:
            net = torch.compile(net)
        return net

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

        With train.accumulate = k, the gradients of k batches (each loss / k; the epoch's last
        group may be shorter) add up before one optimizer step. Checkpoints and interrupts fall
        between optimizer steps only, so a resume never needs half-accumulated gradients. Under
        DDP, one small all-reduce per batch (_agree) gives every rank the global loss, sample
        count, non-finite flag and any signal, so all ranks take the same decisions.
        """
        net, task, opt, sched, s = self.net, self.task, self.opt, self.sched, self.state
        net.train()
        penalize, clip, per_step = bool(self.weights), self.clip, sched.per_step
        every = self.cfg["checkpoint.every_n_steps"]
        skip_nan = self.cfg["train.on_nan"] == "skip"
        cast, scaler, dist, ddp, k = self.autocast, self.scaler, self.dist, self.ddp, self.accumulate
        watchers = self._step_observers
        last = len(loader) - 1 if k > 1 else 0
        acc, count = float(s.partial_loss[0]), s.partial_loss[1]  # a Python float64: summed in step order
        g_loss, g_n, g_bad, stop = None, 0, False, False  # the optimizer step being accumulated
        for i, batch in enumerate(loader):
            if i < skip:
                continue
            end = k == 1 or (i + 1) % k == 0 or i == last  # this batch completes an optimizer step
            if ddp is not None:
                ddp.require_backward_grad_sync = end  # DDP's no_sync(): all-reduce gradients once per step
            if cast is None:
                loss, n = task.training_step(net, batch)
            else:
                with torch.autocast(cast[0], dtype=cast[1]):
                    loss, n = task.training_step(net, batch)
            pen = self.penalty() if penalize else None
            total = loss if pen is None else loss + pen
            if dist is None:
                # the one host sync per step (a hand-written loop's loss.item()); it also catches a
                # non-finite loss before it reaches the weights
                lv = loss.item()
                bad = not math.isfinite(lv if pen is None else total.item())
                step_loss, step_n = lv * n, n
            else:
                bad, step_loss, step_n, stop = self._agree(loss, total, n)
            if not bad and not g_bad:
                if k == 1 or i % k == 0:
                    opt.zero_grad(set_to_none=True)
                if dist is not None:  # this rank's share of the global batch: DDP's mean becomes the global mean
                    total = loss * (n * dist.world / step_n) + (0.0 if pen is None else pen)
                if k > 1:
                    total = total / min(k, last + 1 - i + i % k)  # batches in this step
                (total if scaler is None else scaler.scale(total)).backward()
            if bad and not skip_nan:
                s.diverged = f"the training loss is not finite at epoch {s.epoch + 1}, step {i + 1}"
                s.partial_loss = [acc, count]
                return False
            if bad:
                g_bad = True
            else:
                g_loss = step_loss if g_loss is None else g_loss + step_loss
                g_n += step_n
            if not end:
                continue
            if not g_bad:
                if scaler is not None and (clip or skip_nan):
                    scaler.unscale_(opt)
                if skip_nan:  # the loss can be finite while a gradient overflows
                    norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip or math.inf)
                    # with fp16 an overflow is the GradScaler's business: it skips the update and lowers its scale
                    g_bad = scaler is None and not bool(torch.isfinite(norm))
                elif clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            stepped = not g_bad
            if g_bad:
                s.nan_skips += 1  # the step is dropped: no update, no lr step, no loss counted
                opt.zero_grad(set_to_none=True)
            else:
                if scaler is None:
                    opt.step()
                else:
                    scaler.step(opt)
                    scaler.update()
                if per_step:
                    sched.step()
                s.step += 1
                acc += g_loss
                count += g_n
                for ob in watchers:  # usually none: no per-step cost
                    ob.step_end(s.step, g_loss / max(g_n, 1), self.sched.lr)
            g_loss, g_n, g_bad = None, 0, False
            stop = stop if dist is not None else self._signal is not None
            if stop or (every and stepped and s.step % every == 0):
                s.partial_loss, s.batch_in_epoch = [acc, count], i + 1
                if stop:
                    return False
                self.save(force=True)  # a step-level checkpoint: resume continues after batch i
                s.batch_in_epoch = 0
        s.partial_loss = [acc, count]
        return True

    def _agree(self, loss, total, n: int):
        """DDP: one all-reduce of (loss * samples, samples, non-finite, SIGINT, SIGTERM) over the ranks.

        Returns (non-finite on any rank, global loss sum, global samples, a signal on any rank);
        a rank that learns of another's signal takes it as its own.
        """
        sig = self._signal
        stats = torch.tensor([0.0, n, 0.0, sig == signal.SIGINT, sig == signal.SIGTERM], dtype=torch.float64,
                             device=self.device)
        stats[0] = loss.detach().double() * n
        stats[2] = (~torch.isfinite(total.detach())).double()
        loss_sum, n_all, bad, sigint, sigterm = distributed.all_sum(stats).tolist()
        if (sigint or sigterm) and self._signal is None:
            self._signal = signal.SIGTERM if sigterm else signal.SIGINT
        return bad > 0, loss_sum, int(n_all), bool(sigint or sigterm)

    def _agreed_signal(self) -> bool:
        """Whether a signal arrived, on this rank or (under DDP) on any."""
        if self.dist is None:
            return self._signal is not None
        _, _, _, stop = self._agree(torch.zeros((), device=self.device), torch.zeros((), device=self.device), 0)
        return stop

    def evaluate(self, loader):
        if self.dist is not None:  # every rank scores the whole split with rank 0's weights and buffers
            distributed.sync_buffers(self.model)
        return evaluate(self.model, self.task, loader, self.device, self.autocast)

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
        if not seconds:  # nothing written yet: assume 0.5 GB/s (serialise + write + fsync measured ~1 GB/s here)
            if self._estimate is None:  # the sizes do not change once the optimizer has its state
                self._estimate = self.state_bytes() / 0.5e9
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

    # ------------------------------------------------------------------ the loop
    def fit(self, train_loader, val_loader, epochs: int) -> FitState:
        s = self.state
        keys = list(dict.fromkeys(["train/loss", "val/loss", self.task.monitor, self.monitor]))
        if self.main:
            csv_log = self._csv = MetricsCSV(self.run_dir / "metrics.csv", s.history)
            console = ConsoleLog(epochs, s.epoch, self.cfg["logging.every_epochs"], keys)
        else:
            csv_log = console = _Silent()
        old = self._install_signals()
        # the first periodic write comes min_interval_s after the start (end and interrupt writes are forced)
        self._last_write = time.perf_counter()
        try:
            for epoch in range(s.epoch + 1, epochs + 1):
                t0 = time.perf_counter()
                train_loader.set_epoch(epoch)
                skip, s.batch_in_epoch = s.batch_in_epoch, 0
                try:
                    finished = self.train_epoch(train_loader, skip)
                except Exception as e:
                    if self.cfg["train.compile"] and _compile_error(e):
                        raise ConfigError(f"train.compile failed ({type(e).__name__}: {_first_line(e)}); "
                                          f"train without it (train.compile: false)") from None
                    raise
                if not finished and s.diverged is None:  # a signal: keep the partial epoch and leave
                    self._interrupted()
                loss_sum, n = s.partial_loss
                s.partial_loss, s.batch_in_epoch = [0.0, 0], 0
                val = self.evaluate(val_loader).compute()
                row = {"epoch": epoch, "lr": self.sched.lr,
                       "train/loss": float(loss_sum) / max(n, 1) if s.diverged is None else math.nan}
                if self.cfg["train.on_nan"] == "skip":
                    row["train/skipped_steps"] = s.nan_skips
                row.update({f"train/{k}": v for k, v in self.task.train_logs().items()})  # e.g. loss parts
                row.update({f"val/{k}": v for k, v in val.items()})
                for ob in self.observers:
                    ob.epoch_end(epoch, self.model, row)
                row["seconds"] = time.perf_counter() - t0
                if self.dist is not None:  # rank 0's row on every rank: one early-stopping decision
                    row = distributed.broadcast_object(row)
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
                if self._agreed_signal():
                    self._interrupted()
                if last:
                    break
            if s.stop_reason is None:  # resumed a run that had already finished
                s.stop_reason = f"reached train.epochs ({epochs})"
            # the run is over: rows last.pt could not take (its weights were not finite) are still the run's record
            csv_log.commit()
        finally:
            console.close()
            csv_log.close()
            self._csv = _Silent()
            self._restore_signals(old)
        return s

    def _interrupted(self):
        """Write last.pt (rank 0; the other ranks wait for it) and leave with the signal's exit code."""
        self.save(force=True)
        if self.dist is not None:
            distributed.barrier()
        raise Interrupted(self._signal, self.run_dir / "last.pt")

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
def evaluate(model, task, loader, device, autocast: tuple | None = None):
    """Task metrics over a whole split in eval mode (the metrics object, for details).

    autocast: (device_type, dtype) from amp.autocast_args to evaluate in bf16/fp16, None for float32."""
    model.eval()
    metrics = task.new_metrics(device)
    if autocast is None:
        for batch in loader:
            task.eval_step(model, batch, metrics)
    else:
        with torch.autocast(autocast[0], dtype=autocast[1]):
            for batch in loader:
                task.eval_step(model, batch, metrics)
    return metrics


def _nhwc_inputs(module, args):
    """Forward pre-hook of train.channels_last: 4-D tensor inputs (B, C, H, W) in channels-last layout."""
    return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.ndim == 4 else a
                 for a in args)


def _compile_error(e: BaseException) -> bool:
    """An error raised by torch.compile's machinery (dynamo, inductor, a missing compiler), not by the model."""
    return any(c.__module__.startswith(("torch._dynamo", "torch._inductor")) for c in type(e).__mro__)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())
