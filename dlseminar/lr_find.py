"""`dlsem lr-find`: the learning-rate range test (L. Smith, "Cyclical learning rates", 2017).

Starting from the run's initial weights, take `steps` optimizer steps on training batches while
the learning rate grows exponentially, lr_i = start * (end / start) ** (i / (steps - 1)), and
record each step's training loss (with the L1/L2 penalties, as the Trainer optimises it). The
loss is smoothed with a bias-corrected exponential moving average (beta = 0.9: its memory of
about 10 steps is 0.4 of a decade at the default 200 steps over 8 decades; the common 0.98
remembers 50 steps, 2 decades, and shifts the whole curve to higher rates); the test stops
early when the smoothed loss exceeds 4x its minimum (divergence) or a loss is not finite.

The suggestion (SUGGESTION_RULE): the learning rate at the minimum of the smoothed loss, divided
by 10. At the minimum the lr is already at the edge of instability; a tenth of it is still in
the region where the loss falls fast. The steepest descent of the smoothed curve (the lr where
d loss / d log(lr) is most negative, before the minimum) is reported and drawn too.

The range test is the only loop here: model, task, data and optimizer come from assemble.build and
the engine's build_optimizer, and range_test() puts back the model's weights and buffers, the
optimizer's state, the gradients, the train/eval mode and the RNG streams it found. Not used:
train.accumulate (one batch per step), train.precision (float32), the lr schedule.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import SCHEMA, Config
from . import io
from .engine.penalty import plain_step
from .errors import ConfigError

BETA = 0.9  # smoothing of the loss (see the module docstring)
DIVERGE = 4.0  # stop when the smoothed loss exceeds this many times its minimum
SUGGESTION_RULE = "min/10: a tenth of the lr at the smoothed loss's minimum"


@dataclass
class RangeTest:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # per step, as measured
    smoothed: list[float] = field(default_factory=list)
    stop_reason: str = ""

    def minimum(self) -> int | None:
        finite = [(v, i) for i, v in enumerate(self.smoothed) if math.isfinite(v)]
        return min(finite)[1] if finite else None

    def suggestion(self) -> float | None:
        """SUGGESTION_RULE; None when the loss never fell (minimum at the first step)."""
        i = self.minimum()
        return None if not i else self.lrs[i] / 10

    def steepest(self) -> float | None:
        """The lr where the smoothed loss falls fastest per decade of lr, up to its minimum."""
        i = self.minimum()
        if not i or i < 2:
            return None
        logs = [math.log10(lr) for lr in self.lrs[: i + 1]]
        ys = self.smoothed[: i + 1]
        slopes = [(ys[j + 1] - ys[j - 1]) / (logs[j + 1] - logs[j - 1]) for j in range(1, i)]
        return self.lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


def range_test(model: torch.nn.Module, task, optimizer: torch.optim.Optimizer, loader, start: float = 1e-7,
               end: float = 10.0, steps: int = 200, penalty=None, grad_clip: float = 0.0) -> RangeTest:
    """Run the range test on `loader`'s batches; every state it touches is restored before it returns.

    penalty: an optional callable giving the regularisation term added to each step's loss."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    saved_rng = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    result = RangeTest()
    try:
        _run(model, task, optimizer, loader, start, end, steps, penalty, grad_clip, result)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        for p, g in zip(model.parameters(), saved_grads):
            p.grad = g
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
        model.train(was_training)
    return result


def _batches(loader):
    epoch = 0
    while True:
        epoch += 1
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError("the training split gave no batch")


def _run(model, task, optimizer, loader, start, end, steps, penalty, grad_clip, r: RangeTest) -> None:
    model.train()
    avg, best = 0.0, math.inf
    batches = _batches(loader)
    for i in range(steps):
        lr = start * (end / start) ** (i / max(steps - 1, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, _ = task.training_step(model, next(batches))
        if penalty is not None:
            loss = loss + penalty()
        value = float(loss.detach())
        r.lrs.append(lr)
        r.losses.append(value)
        if not math.isfinite(value):
            r.smoothed.append(math.nan)
            r.stop_reason = f"the loss is not finite at lr {lr:.3g} (step {i + 1})"
            return
        avg = BETA * avg + (1 - BETA) * value
        smooth = avg / (1 - BETA ** (i + 1))
        r.smoothed.append(smooth)
        best = min(best, smooth)
        if smooth > DIVERGE * best:
            r.stop_reason = f"the smoothed loss passed {DIVERGE:g}x its minimum at lr {lr:.3g} (step {i + 1}): diverging"
            return
        plain_step(optimizer, loss, model, grad_clip)
    r.stop_reason = f"reached the last step ({steps}, lr {end:g})"


def _penalty(cfg: Config, model: torch.nn.Module):
    """The Trainer's L1/L2 term (biases excluded), or None."""
    from .engine.penalty import penalty_weights, weight_penalty

    l1, l2 = cfg["loss.l1"], cfg["loss.l2"]
    if not (l1 or l2):
        return None
    weights = penalty_weights(model)
    return lambda: weight_penalty(weights, l1, l2)


def find(cfg: Config, start: float = 1e-7, end: float = 10.0, steps: int = 200) -> RangeTest:
    """The range test for a resolved config: built as `dlsem train` would build it."""
    from .assemble import build
    from .engine.optim import build_optimizer

    if not (math.isfinite(start) and math.isfinite(end)):  # an lr of inf would be "suggested"
        raise ConfigError(f"--start and --end must be finite numbers (got {start:g} and {end:g})")
    if not 0 < start < end:
        raise ConfigError(f"--start must be > 0 and below --end (got {start:g} and {end:g})")
    if not math.isfinite(end / start):  # the schedule's growth factor would overflow to an lr of inf
        raise ConfigError(f"--start {start:g} is too small for --end {end:g}: their ratio overflows")
    if steps < 10:
        raise ConfigError(f"--steps must be at least 10 (got {steps})")
    setup = build(cfg)
    optimizer = build_optimizer(cfg, setup.model)
    return range_test(setup.model, setup.task, optimizer, setup.loader("train", train=True), start, end, steps,
                      _penalty(cfg, setup.model), cfg["train.grad_clip"])


def output_dir(cfg: Config, out: str | None, overwrite: bool = False) -> Path:
    """--out, else runs/<name>-lr-find (numbered -2, -3, ... when taken); checked, not yet created.

    A folder holding lr_find.json is an earlier range test's: its files are rewritten. Any other
    non-empty --out needs `overwrite`, and is refused when it is a run directory or holds the inputs."""
    if out:
        d = Path(out)
        io.check_dir(d, overwrite=overwrite, own=(d / "lr_find.json").is_file(),
                     inputs=io.config_inputs(cfg, "the config being tested"), what="the range test")
    else:
        d = io.numbered_dir(Path("runs") / f"{cfg['name']}-lr-find")
        io.check_dir(d)  # `runs` a file, or a folder this user cannot write: refused before the test runs
    return d


def write_outputs(folder: Path, r: RangeTest, cfg: Config) -> dict:
    """lr_find.png, lr_find.csv (step, lr, loss, smoothed) and lr_find.json (the suggestion and why)."""
    from .viz.lr_find import lr_find

    suggestion, steepest = r.suggestion(), r.steepest()
    i = r.minimum()
    info = {"config": cfg.source, "optimizer": cfg["optim.name"], "suggested_lr": suggestion, "rule": SUGGESTION_RULE,
            "min_loss_lr": None if i is None else r.lrs[i], "steepest_lr": steepest, "steps_run": len(r.lrs),
            "stop_reason": r.stop_reason, "beta": BETA, "diverge_factor": DIVERGE}
    others = {k: v for k, v in (("minimum", info["min_loss_lr"]), ("steepest", steepest)) if v is not None}
    folder.mkdir(parents=True, exist_ok=True)
    lr_find(folder / "lr_find.png", r.lrs, r.smoothed, r.losses, suggestion, "min/10", others)
    with io.atomic_open(folder / "lr_find.csv", "w") as f:
        f.write("step,lr,loss,smoothed\n")
        for k, (lr, loss, sm) in enumerate(zip(r.lrs, r.losses, r.smoothed), 1):
            f.write(f"{k},{lr!r},{loss!r},{sm!r}\n")
    io.write_text(folder / "lr_find.json", json.dumps(info, indent=2) + "\n")  # last: it marks the folder as ours
    return info


def write_config(path: Path, cfg: Config, lr: float, overwrite: bool = False) -> None:
    """A recipe with the keys `cfg` set explicitly (file and --set) and optim.lr = lr; the source's
    header comment is kept below a line saying where the lr came from."""
    import yaml

    path = Path(path)
    check_write(path, cfg, overwrite)
    values = {k: cfg[k] for k in SCHEMA if k in cfg.explicit and k != "out"}
    values["optim.lr"] = float(f"{lr:.3g}")
    nested: dict = {}
    for k, v in values.items():
        sec, _, sub = k.rpartition(".")
        (nested.setdefault(sec, {}) if sec else nested)[sub] = v
    header = [f"# {cfg.source or 'the default config'} with optim.lr = {values['optim.lr']:g} from `dlsem lr-find` ({SUGGESTION_RULE})."]
    if cfg.source:
        lines = Path(cfg.source).read_text(encoding="utf-8").splitlines()
        header += [ln for ln in _leading_comments(lines)]
    try:
        io.write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(nested, sort_keys=False, default_flow_style=None))
    except OSError as e:
        raise ConfigError(f"cannot write {str(path)!r}: {e.strerror or e}") from None


def check_write(path: Path, cfg: Config, overwrite: bool = False) -> None:
    """--write never replaces the recipe being tested (its comments would be lost; a symlink to it or
    `./x/../x.yaml` counts), its data, a folder or a run's files; another existing file only with
    `overwrite`. Checked before the test runs."""
    io.check_file(Path(path), option="--write", overwrite=overwrite,
                  inputs=io.config_inputs(cfg, "the config being tested"),
                  hint="write the new recipe to another file")


def _leading_comments(lines: list[str]) -> list[str]:
    out = []
    for ln in lines:
        if not ln.startswith("#"):
            break
        out.append(ln)
    return out
