"""One optimizer step of the Trainer: forward and backward of each batch of an accumulation group,
then gradient clipping, the non-finite check and the update.

With train.accumulate = k, the gradients of k batches (each loss / k; the epoch's last group may
be shorter) add up before one optimizer step. Under DDP, one small all-reduce per batch (agree)
gives every rank the global loss, sample count, non-finite flag and any signal, so all ranks take
the same decisions. The order of every float operation is fixed: a run cut by a checkpoint and
resumed repeats an uninterrupted one bit for bit.
"""
from __future__ import annotations

import math
import signal

import torch

from . import distributed


class Group:
    """The optimizer step being accumulated: its loss sum and samples, and whether a batch was not finite."""

    __slots__ = ("loss", "n", "bad")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Empty again for the next step (one object per epoch: no allocation per step)."""
        self.loss, self.n, self.bad = None, 0, False


class Step:
    """The settings one epoch's optimizer steps share (built by Trainer.train_epoch from its own).

    penalty: a callable giving the L1/L2 term, or None; signals: the Trainer's Signals (DDP reads
    and shares them in agree); batches: the loader's length (where the last group ends).
    """

    __slots__ = ("net", "model", "task", "opt", "sched", "scaler", "cast", "clip", "skip_nan", "k", "dist", "ddp",
                 "penalty", "device", "signals", "per_step", "last")  # the hot loop reads them every step

    def __init__(self, *, net, model, task, opt, sched, scaler, autocast, clip, skip_nan, accumulate, dist, ddp,
                 penalty, device, signals, batches: int):
        self.net, self.model, self.task, self.opt, self.sched = net, model, task, opt, sched
        self.scaler, self.cast, self.clip, self.skip_nan, self.k = scaler, autocast, clip, skip_nan, accumulate
        self.dist, self.ddp, self.penalty, self.device, self.signals = dist, ddp, penalty, device, signals
        self.per_step = sched.per_step
        self.last = batches - 1 if accumulate > 1 else 0

    def backward(self, i: int, batch, group: Group) -> tuple[bool, bool, bool]:
        """Forward and backward of batch i into `group`.

        Returns (its loss is not finite, it completes an optimizer step, a signal on any rank:
        DDP only). A batch whose loss is not finite, or one after it in the group, gets no backward.
        """
        k, dist, last, cast, penalty = self.k, self.dist, self.last, self.cast, self.penalty
        end = k == 1 or (i + 1) % k == 0 or i == last
        if self.ddp is not None:
            self.ddp.require_backward_grad_sync = end  # DDP's no_sync(): all-reduce gradients once per step
        if cast is None:
            loss, n = self.task.training_step(self.net, batch)
        else:
            with torch.autocast(cast[0], dtype=cast[1]):
                loss, n = self.task.training_step(self.net, batch)
        pen = penalty() if penalty is not None else None
        total = loss if pen is None else loss + pen
        stop = False
        if dist is None:
            # the one host sync per step (a hand-written loop's loss.item()); it also catches a
            # non-finite loss before it reaches the weights
            lv = loss.item()
            bad = not math.isfinite(lv if pen is None else total.item())
            step_loss, step_n = lv * n, n
        else:
            bad, step_loss, step_n, stop = agree(self.device, self.signals, loss, total, n)
        if not bad and not group.bad:
            if k == 1 or i % k == 0:
                self.opt.zero_grad(set_to_none=True)
            if dist is not None:  # this rank's share of the global batch: DDP's mean becomes the global mean
                total = loss * (n * dist.world / step_n) + (0.0 if pen is None else pen)
            if k > 1:
                total = total / min(k, last + 1 - i + i % k)  # batches in this step
            scaler = self.scaler
            (total if scaler is None else scaler.scale(total)).backward()
        if bad:
            group.bad = True
        else:  # summed batch by batch in order, as float64
            group.loss = step_loss if group.loss is None else group.loss + step_loss
            group.n += step_n
        return bad, end, stop

    def update(self, group: Group) -> bool:
        """Clip, check the gradients and take the optimizer step (and a per-step lr step).

        Returns False when the step is dropped (a non-finite loss or gradient): no update, no lr step.
        """
        opt, scaler, clip = self.opt, self.scaler, self.clip
        if not group.bad:
            if scaler is not None and (clip or self.skip_nan):
                scaler.unscale_(opt)
            if self.skip_nan:  # the loss can be finite while a gradient overflows
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip or math.inf)
                # with fp16 an overflow is the GradScaler's business: it skips the update and lowers its scale
                group.bad = scaler is None and not bool(torch.isfinite(norm))
            elif clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if group.bad:
            opt.zero_grad(set_to_none=True)
            return False
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)
            scaler.update()
        if self.per_step:
            self.sched.step()
        return True


def agree(device, signals, loss, total, n: int):
    """DDP: one all-reduce of (loss * samples, samples, non-finite, SIGINT, SIGTERM) over the ranks.

    Returns (non-finite on any rank, global loss sum, global samples, a signal on any rank);
    a rank that learns of another's signal takes it as its own.
    """
    sig = signals.received
    stats = torch.tensor([0.0, n, 0.0, sig == signal.SIGINT, sig == signal.SIGTERM], dtype=torch.float64,
                         device=device)
    stats[0] = loss.detach().double() * n
    stats[2] = (~torch.isfinite(total.detach())).double()
    loss_sum, n_all, bad, sigint, sigterm = distributed.all_sum(stats).tolist()
    if (sigint or sigterm) and signals.received is None:
        signals.received = signal.SIGTERM if sigterm else signal.SIGINT
    return bad > 0, loss_sum, int(n_all), bool(sigint or sigterm)
