"""The one training loop for every task.

It knows optimisation only: steps, penalties, clipping, accumulation, mixed precision, the lr
schedule, early stopping, checkpoints, logs and DDP. What a batch holds and how it is scored is
the Task's business. The parts live beside it: step.py (one optimizer step), checkpoint_policy.py
(when last.pt and best.pt are written, and what they hold), signals.py (SIGINT/SIGTERM).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .. import finetune
from ..errors import Interrupted
from . import amp
from . import distributed
from .callbacks import ConsoleLog, EarlyStopping, MetricsCSV, StepsCSV
from .checkpoint_policy import CheckpointPolicy, FitState
from .net import compile_error, compile_failed, prepare
from .penalty import penalty_weights, weight_penalty
from .signals import Signals
from .step import Group, Step, agree


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


class Trainer(CheckpointPolicy):
    """`model` is the plain module (its state_dict is what checkpoints hold); `dist` is this process's
    place among several (distributed.init) or None. The steps call self.net: the model, in
    DistributedDataParallel under torchrun and compiled with train.compile."""

    def __init__(self, model, task, optimizer, schedule, device, cfg, run_dir: Path, ckpt_meta: dict,
                 dist: distributed.Dist | None = None, observers=()):
        self.model, self.task, self.opt, self.sched = model, task, optimizer, schedule
        self.device, self.cfg, self.run_dir, self.meta = device, cfg, Path(run_dir), ckpt_meta
        self.l1, self.l2 = cfg["loss.l1"], cfg["loss.l2"]
        self.weights = penalty_weights(model) if (self.l1 or self.l2) else []
        self.clip = cfg["train.grad_clip"]
        self.monitor, self.mode = task.monitor_mode(cfg)  # the task's metric and direction, never a guess from a name
        self.es = EarlyStopping(self.monitor, self.mode, cfg["early_stop.patience"], cfg["early_stop.min_delta"])
        self.state = FitState()
        self.signals = Signals()  # held while fit() runs; acted on between optimizer steps
        self._last_write = -math.inf
        self._write_seconds = 0.0  # how long the last checkpoint write took (spaces the next one)
        self._estimate: float | None = None  # the first write's duration, guessed from its bytes
        self._best_dirty = False  # best weights changed since best.pt was written
        self._csv = _Silent()  # metrics.csv while fit() runs: its rows follow each last.pt write
        self._steps: StepsCSV | None = None  # steps.csv while fit() runs (logging.steps, rank 0): rows go before last.pt
        # called (rank 0) after each last.pt write, once the checkpoint holds the run's newest state:
        # what must never be ahead of last.pt is written here (run.py: config.yaml on a resume)
        self.after_save: list = []
        self.dist, self.main = dist, dist is None or dist.main
        self.accumulate = cfg["train.accumulate"]
        self.autocast = amp.autocast_args(cfg["train.precision"], device)  # None for 32: no per-step cost
        self.scaler = amp.make_scaler(cfg["train.precision"], device)  # fp16 only
        self.net, self.ddp = prepare(model, cfg, device, dist)  # what the steps call
        # observers (observers.py: health, decision-boundary frames, TensorBoard): step_end after each
        # optimizer step (only those that ask), epoch_end after each epoch's validation, and their
        # state_dict() carried in last.pt by name
        self.observers = list(observers)
        self._step_observers = [ob for ob in self.observers if ob.wants_steps]

    # ------------------------------------------------------------------ steps
    def penalty(self) -> torch.Tensor | float:
        """lambda1 * sum|W| + lambda2 * sum W^2 over weights (biases excluded)."""
        return weight_penalty(self.weights, self.l1, self.l2)

    def train_epoch(self, loader, skip: int = 0) -> bool:
        """One pass over `loader`, which starts at batch `skip` of the epoch (a resumed run did those before
        its checkpoint: the loader never reads them, see BatchPlan.set_epoch).

        The epoch's loss sum and sample count accumulate in self.state.partial_loss, one step at
        a time in a fixed order, so an epoch cut by a checkpoint and resumed adds up to exactly
        the same float as an uninterrupted one. Returns True when the pass finished; False when
        a signal or a non-finite loss (train.on_nan: stop) ended it early. Checkpoints and
        interrupts fall between optimizer steps only (step.py: accumulation, AMP, DDP), so a
        resume never needs half-accumulated gradients.
        """
        s, every = self.state, self.cfg["checkpoint.every_n_steps"]
        step = self._step(len(loader))
        backward, update, skip_nan = step.backward, step.update, step.skip_nan  # locals: the loop is hot
        dist, signals, watchers = self.dist, self.signals, self._step_observers
        log_step = self._steps.write if self._steps is not None else None
        self.net.train()
        finetune.apply(self.model, self.cfg, s.epoch + 1)  # model.freeze until train.unfreeze_at (frozen BN: eval)
        acc, count = float(s.partial_loss[0]), s.partial_loss[1]  # a Python float64: summed in step order
        group = Group()
        for i, batch in enumerate(loader, skip):
            bad, end, stop = backward(i, batch, group)
            if bad and not skip_nan:
                s.diverged = f"the training loss is not finite at epoch {s.epoch + 1}, step {i + 1}"
                s.partial_loss = [acc, count]
                return False
            if not end:
                continue
            stepped = update(group)
            if stepped:
                s.step += 1
                acc += group.loss
                count += group.n
                for ob in watchers:  # usually none: no per-step cost
                    ob.step_end(s.step, group.loss / max(group.n, 1), self.sched.lr)
                if log_step is not None:
                    log_step(s.step, s.epoch + 1, group.loss / max(group.n, 1))
            else:
                s.nan_skips += 1  # the step is dropped: no update, no lr step, no loss counted
            group.reset()
            stop = stop if dist is not None else signals.received is not None
            if stop or (every and stepped and s.step % every == 0):
                s.partial_loss, s.batch_in_epoch = [acc, count], i + 1
                if stop:
                    return False
                self.save(force=True)  # a step-level checkpoint: resume continues after batch i
                s.batch_in_epoch = 0
        s.partial_loss = [acc, count]
        return True

    def _step(self, batches: int) -> Step:
        """This epoch's optimizer step, from the Trainer's settings (read afresh each epoch)."""
        return Step(net=self.net, model=self.model, task=self.task, opt=self.opt, sched=self.sched,
                    scaler=self.scaler, autocast=self.autocast, clip=self.clip,
                    skip_nan=self.cfg["train.on_nan"] == "skip", accumulate=self.accumulate, dist=self.dist,
                    ddp=self.ddp, penalty=self.penalty if self.weights else None, device=self.device,
                    signals=self.signals, batches=batches)

    def save(self, force: bool = False) -> bool:
        """CheckpointPolicy.save, with steps.csv's rows appended first: the file is never behind last.pt
        (a resume cuts what is ahead)."""
        if self._steps is not None:
            self._steps.flush()
        return super().save(force)

    def _agreed_signal(self) -> bool:
        """Whether a signal arrived, on this rank or (under DDP) on any."""
        if self.dist is None:
            return self.signals.received is not None
        zero = torch.zeros((), device=self.device)
        return agree(self.device, self.signals, zero, zero, 0)[3]

    def evaluate(self, loader):
        """Task metrics over `loader` with the current weights (the metrics object)."""
        if self.dist is not None:  # every rank scores the whole split with rank 0's weights and buffers
            distributed.sync_buffers(self.model)
        return evaluate(self.model, self.task, loader, self.device, self.autocast)

    # ------------------------------------------------------------------ the loop
    def fit(self, train_loader, val_loader, epochs: int) -> FitState:
        """Train epochs state.epoch + 1 .. `epochs` (or until a stop reason): each one a training
        pass, validation, its metrics row, then last.pt as the checkpoint policy allows."""
        s = self.state
        csv_log, console = self._logs(epochs)
        with self.signals:
            # the first periodic write comes min_interval_s after the start (end and interrupt writes are forced)
            self._last_write = time.perf_counter()
            try:
                for epoch in range(s.epoch + 1, epochs + 1):
                    t0 = time.perf_counter()
                    loss_sum, n = self._train_pass(train_loader, epoch)
                    row = self._epoch_row(epoch, val_loader, loss_sum, n, t0)
                    s.history.append(row)
                    s.epoch = epoch
                    reason = self._stop_reason(epoch, row, n)
                    self.sched.epoch_end(row.get(self.monitor), self.mode)
                    csv_log.write(row)  # held until a last.pt holds this epoch (save, or the commit below)
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
                if self._steps is not None:
                    self._steps.close()
                    self._steps = None
        return s

    def _logs(self, epochs: int):
        """(metrics.csv, console) for this fit: rank 0's, silent ones on the other ranks."""
        if not self.main:
            return _Silent(), _Silent()
        keys = list(dict.fromkeys(["train/loss", "val/loss", self.task.monitor, self.monitor]))
        self._csv = MetricsCSV(self.run_dir / "metrics.csv", self.state.history)
        if self.cfg["logging.steps"]:  # a resume cuts it back to the checkpoint's step
            self._steps = StepsCSV(self.run_dir / "steps.csv", self.state.step)
        return self._csv, ConsoleLog(epochs, self.state.epoch, self.cfg["logging.every_epochs"], keys)

    def _train_pass(self, loader, epoch: int) -> tuple[float, int]:
        """The training pass of `epoch` (the rest of it after a mid-epoch resume); its (loss sum, samples).

        A signal ends it with last.pt written (Interrupted); a non-finite loss ends it with state.diverged set."""
        s = self.state
        skip, s.batch_in_epoch = s.batch_in_epoch, 0
        loader.set_epoch(epoch, skip)
        try:
            finished = self.train_epoch(loader, skip)
        except Exception as e:
            if self.cfg["train.compile"] and compile_error(e):
                raise compile_failed(e) from None
            raise
        if not finished and s.diverged is None:  # a signal: keep the partial epoch and leave
            self._interrupted()
        loss_sum, n = s.partial_loss
        s.partial_loss, s.batch_in_epoch = [0.0, 0], 0
        return loss_sum, n

    def _epoch_row(self, epoch: int, val_loader, loss_sum: float, n: int, t0: float) -> dict:
        """The epoch's metrics row: training loss, validation metrics, observers' numbers, seconds."""
        s = self.state
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
        return row

    def _stop_reason(self, epoch: int, row: dict, n: int) -> str | None:
        """Why training stops after this epoch (divergence, early stopping), or None; tracks the best weights."""
        s = self.state
        reason = None
        if s.diverged is not None:
            reason = f"{s.diverged}: training diverged (try a lower optim.lr, train.grad_clip or train.on_nan: skip)"
        elif n == 0:
            reason = f"every step of epoch {epoch} had a non-finite loss or gradient: training diverged (try a lower optim.lr)"
        elif not math.isfinite(row["train/loss"]):
            reason = f"training loss is not finite at epoch {epoch}: training diverged (try a lower optim.lr)"
        reason = reason or self.es.update(epoch, row, self.model)
        self._best_dirty = self._best_dirty or self.es.improved
        return reason

    def _interrupted(self):
        """Write last.pt (rank 0; the other ranks wait for it) and leave with the signal's exit code."""
        self.save(force=True)
        if self.dist is not None:
            distributed.barrier()
        raise Interrupted(self.signals.received, self.run_dir / "last.pt")


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

