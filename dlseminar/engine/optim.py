"""Optimizers (registered) and the learning-rate schedule."""
from __future__ import annotations

import inspect
import math

import torch

from .. import finetune
from ..registry import OPTIMIZERS, SCHEDULES


@OPTIMIZERS.register("sgd")
def sgd(params, lr, weight_decay, **_):
    """Plain gradient descent W <- W - lr * grad (stochastic, mini-batch or full batch by train.batch_size)."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("momentum")
def momentum(params, lr, weight_decay, momentum, **_):
    """SGD with momentum (optim.momentum): a running velocity smooths the steps."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@OPTIMIZERS.register("nesterov")
def nesterov(params, lr, weight_decay, momentum, **_):
    """SGD with Nesterov momentum: the gradient is taken at the look-ahead point."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params, lr, weight_decay, alpha, eps, **_):
    """RMSProp: divide by a running root-mean-square of recent gradients."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def adam(params, lr, weight_decay, betas, eps, **_):
    """Adam: momentum plus RMSProp-style scaling, bias-corrected."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params, lr, weight_decay, betas, eps, **_):
    """AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adagrad")
def adagrad(params, lr, weight_decay, eps, **_):
    """Adagrad: per-weight step sizes shrinking with the sum of squared gradients."""
    return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=weight_decay)


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """cfg's optimizer over every parameter, frozen ones too (finetune.param_groups: a smaller lr for the backbone)."""
    entry = OPTIMIZERS.get(cfg["optim.name"])
    return entry.fn(finetune.param_groups(model, cfg), **cfg.section("optim"))


# --- learning-rate schedules: factor(epoch, progress, **keys) with the epoch as a float and
# progress in [0, 1] over the run (after warm-up); `keys` are the sched.* keys the builder's
# signature names (plus lr, optim.lr), which is also what `dlsem config show` says each key is
# taken by. Each declares how LRSchedule drives it (no branch on names):
# per_step=False: the factor never changes within a run, so no update after each step;
# on_plateau=True: LRSchedule.epoch_end also shrinks the lr when the monitored metric stalls.

@SCHEDULES.register("none", per_step=False)
def _none(epoch, progress):
    """Constant learning rate."""
    return 1.0


@SCHEDULES.register("step")
def _step(epoch, progress, gamma, step_size):
    """Multiply the lr by sched.gamma every sched.step_size epochs."""
    return gamma ** (int(epoch) // step_size)


@SCHEDULES.register("cosine")
def _cosine(epoch, progress, min_lr, lr):
    """Cosine decay from lr to sched.min_lr over the run."""
    lo = min_lr / lr
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


@SCHEDULES.register("onecycle")
def _onecycle(epoch, progress, pct_start):
    """One cycle: lr/25 up to lr over sched.pct_start of the run, then down to lr/1e4 (cosine)."""
    start, end, pct = 1 / 25, 1 / 1e4, pct_start
    if progress < pct:
        t = progress / pct
        return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * t))
    t = min((progress - pct) / (1 - pct), 1.0)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))


@SCHEDULES.register("plateau", per_step=False, on_plateau=True)
def _plateau(epoch, progress, factor, patience, min_lr):
    """Multiply the lr by sched.factor when the monitored metric stalls for sched.patience epochs."""
    return 1.0  # the plateau scale is applied by LRSchedule.epoch_end (which reads these keys)


class LRSchedule:
    """Sets the lr of every param group from the step count (and the monitor for plateau).

    Stateless apart from the step, the plateau scale and its counters, so its state_dict
    is a few numbers that `weights_only` checkpoints hold.
    """

    def __init__(self, optimizer, cfg, steps_per_epoch: int, epochs: int):
        self.opt = optimizer
        self.s = dict(cfg.section("sched"), lr=cfg["optim.lr"])
        entry = SCHEDULES.get(self.s["name"])
        self.fn, self.on_plateau = entry.fn, entry.meta.get("on_plateau", False)
        names = list(inspect.signature(entry.fn).parameters)[2:]  # after epoch, progress
        self.keys = {k: self.s[k] for k in names}
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.spe, self.epochs = steps_per_epoch, epochs
        self.warmup = self.s["warmup_epochs"] * steps_per_epoch
        self.per_step = entry.meta.get("per_step", True) or self.warmup > 0
        self.step_count, self.scale, self.best, self.bad = 0, 1.0, None, 0
        self._apply()

    def factor(self) -> float:
        n = self.step_count
        total = max(self.spe * self.epochs - self.warmup, 1)
        f = self.fn(n / self.spe, max(n - self.warmup, 0) / total, **self.keys) * self.scale
        if self.warmup > 0 and n < self.warmup:
            f *= (n + 1) / (self.warmup + 1)
        return f

    def _apply(self) -> None:
        f = self.factor()
        for g, b in zip(self.opt.param_groups, self.base):
            g["lr"] = b * max(f, 0.0)

    def step(self) -> None:
        """Call after each optimizer step (only needed when self.per_step)."""
        self.step_count += 1
        self._apply()

    def epoch_end(self, value: float | None, mode: str) -> None:
        """Plateau bookkeeping with the epoch's monitored value; keeps step_count in sync."""
        if self.on_plateau and value is not None and math.isfinite(value):
            better = self.best is None or (value < self.best if mode == "min" else value > self.best)
            if better:
                self.best, self.bad = value, 0
            else:
                self.bad += 1
                if self.bad > self.s["patience"]:
                    floor = self.s["min_lr"] / self.s["lr"]
                    self.scale = max(self.scale * self.s["factor"], floor)
                    self.bad = 0
            self._apply()

    def set_epochs(self, epochs: int) -> None:
        self.epochs = epochs

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, d: dict) -> None:
        self.step_count, self.scale, self.best, self.bad = d["step_count"], d["scale"], d["best"], d["bad"]
        self._apply()
