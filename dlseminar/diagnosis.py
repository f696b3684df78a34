"""A diagnosis read from a run's curves: one plain line for the student, with numbers and a next step.

diagnose(history) looks at the per-epoch rows the Trainer records (metrics.csv: "epoch",
"train/loss", "val/loss", "train/skipped_steps", ...) and says which of the seminar's pictures the
curves show: diverged, overfitting, noisy, underfitting, still improving or settled (or that
three epochs or fewer are too few to tell). It reads losses only, and only their relative changes,
so it works the same for a cross-entropy near 0.7 and a regression MSE near 300; the one absolute
reference, the loss of a model that learned nothing, comes from chance_loss() when the caller
knows the loss and the number of classes. It is pure: no files, no torch.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

Kind = Literal["diverged", "too_short", "overfitting", "noisy", "underfitting", "still_improving", "settled"]

# Fewer epochs than this: no shape to read. Overfitting needs a minimum with two epochs after it,
# a trend needs a window before the last epochs; with 1-3 points every verdict would be a guess.
MIN_EPOCHS = 4
# A run away: the training loss (an epoch mean, steadier than one step) ends 1.5x above its lowest
# value AND has given back at least half of what it gained since the first epoch. Overfitting never
# raises the training loss; the second condition keeps out SGD's zigzag around a low plateau and a
# tiny late loss that wobbles (0.010 -> 0.016 after 0.7 at the start). Either way the advice is the
# same as for noise: a lower lr.
RUNAWAY = 1.5
GAVE_BACK = 0.5
# Overfitting: the validation loss ends at least 10 % above its minimum (the last epoch and the median
# of the last three both: one spike or one dip does not decide), and at least twice the typical
# epoch-to-epoch jump, so a noisy curve's lucky low is not called a turn.
TURN = 0.10
TURN_OVER_NOISE = 2.0
# Noisy: in the second half of the run the validation loss moves by 10 % or more from one epoch to
# the next (median of the changes), and it zigzags (the change flips sign at least every other
# epoch); a steady 10 %-per-epoch descent or rise is a trend, not noise.
NOISE = 0.10
FLIPS = 0.5
# Underfitting with a reference: the lower of the last training and validation losses is still 60 %
# or more of the chance-level loss. For cross-entropy that is a geometric-mean probability of the true
# class of at most K^-0.6 (0.66 for 2 classes, against 0.5 for a coin; 0.25 for 10 classes, against
# 0.1). The lower of the two because dropout inflates the training loss of a model that learned.
UNDERFIT_OF_CHANCE = 0.6
# Without a reference: the training loss fell by less than 10 % from its first epoch. The first
# epoch's mean includes the untrained start, so a model that learns at all lands far below it.
UNDERFIT_FALL = 0.10
# Still improving: the lowest loss is in the last two epochs and is 3 % or more below anything before
# the last WINDOW epochs (about 0.6 % an epoch: below that, more epochs buy little).
WINDOW = 5
STILL_IMPROVING = 0.03
# With a reference, a loss under 2 % of chance has nothing left worth gaining (cross-entropy 0.014 on
# 2 classes: the true class at 0.986): a falling 0.0002 is no reason for more epochs.
SOLVED = 0.02

# a training loss that never fell below 99 % of the chance level: nothing learned at all. Two causes look the
# same in the curves (a perceptron on circles; a deep sigmoid net without batch norm), so both are named
STUCK_AT_CHANCE = 0.99
STUCK = ("a model that cannot draw this data (a perceptron draws one line: hidden layers, model.hidden) or a "
         "gradient that does not reach the weights (another optim.lr or sched.warmup_epochs, model.activation "
         "relu, batch norm: model.batch_norm: true or a zoo model's _bn variant; train.health: true shows each "
         "layer's gradient)")
BIGGER = "a bigger model (more layers, or units in model.hidden for an mlp) or more epochs (train.epochs)"


@dataclass(frozen=True)
class Diagnosis:
    """kind: which picture the curves show; line: the sentence for the student (numbers, then
    '->' and what to try, naming config keys); epoch: the epoch the verdict points at (overfitting
    since, diverged at), else None."""

    kind: Kind
    line: str
    epoch: int | None = None


def chance_loss(loss: str, num_classes: int | None) -> float | None:
    """The loss of a classifier that learned nothing: the best prediction that ignores the input,
    with balanced classes (1/K for each class). ce, nll: ln K; bce (one sigmoid for 2 classes,
    one-vs-rest otherwise): the binary entropy of 1/K; mse on probabilities: (1/K)(1 - 1/K).
    None for other losses and without 2+ classes. Segmentation's pixels are far from balanced
    (mostly background): pass no reference there."""
    if not num_classes or num_classes < 2:
        return None
    p = 1 / num_classes
    return {"ce": math.log(num_classes), "nll": math.log(num_classes),
            "bce": -(p * math.log(p) + (1 - p) * math.log(1 - p)), "mse": p * (1 - p)}.get(loss)


def diagnose(history: Iterable[Mapping], stop_reason: str | None = None, chance: float | None = None) -> Diagnosis:
    """The verdict on one run from its per-epoch rows (the Trainer's state.history, or metrics.csv
    rows: numbers as text are read). stop_reason: the run's (summary.json), to place a divergence at
    its step; chance: chance_loss() for this loss and data, or None."""
    rows = [r for r in history if _num(r.get("train/loss")) is not None]  # a row without one says nothing
    epochs = [_epoch(r, i) for i, r in enumerate(rows, 1)]
    train = [_num(r.get("train/loss")) for r in rows]
    val = [_num(r.get("val/loss")) for r in rows]
    if any(v is None for v in val):  # a detector records no validation loss
        val = []
    broken = _diverged(rows, epochs, train, val, stop_reason) if rows else None
    if broken is not None:
        return broken
    if len(rows) < MIN_EPOCHS:
        n = len(rows)
        return Diagnosis("too_short", f"too little history to read: {n} epoch{'s' * (n != 1)}, and the curves' shape "
                                      f"needs at least {MIN_EPOCHS} -> train more epochs (train.epochs) to see it")
    curve, name = (val, "validation loss") if val else (train, "training loss")
    jump, flips = _noise(curve)
    return (_overfitting(epochs, train, val, jump) or _noisy(jump, flips, name)
            or _underfitting(train, val, chance) or _still_improving(curve, name, chance, stop_reason)
            or _settled(epochs, train, curve, name))


# ------------------------------------------------------------------------------------ the verdicts
def _diverged(rows, epochs, train, val, stop_reason) -> Diagnosis | None:
    """A loss that is not a number, steps skipped for one, a stop for divergence, or a training loss
    that ran away from its minimum."""
    advice = "-> a lower optim.lr (or train.grad_clip)"
    bad = next((e for e, t, v in zip(epochs, train, val or [0.0] * len(rows))
                if not (math.isfinite(t) and math.isfinite(v))), None)
    if bad is not None or "diverged" in (stop_reason or ""):
        # the Trainer's stop reasons name the epoch, and the step when a step's loss was not finite
        where = re.search(r"epoch (\d+)(?:, step (\d+))?", stop_reason or "")
        epoch = int(where[1]) if where else bad if bad is not None else epochs[-1]
        at = f"epoch {epoch}" + (f", step {where[2]}" if where and where[2] else "")
        return Diagnosis("diverged", f"diverged at {at}: the loss ran to inf/nan {advice}", epoch)
    skipped = [_num(r.get("train/skipped_steps")) or 0 for r in rows]
    if skipped and skipped[-1] > 0:  # train.on_nan: skip (cumulative count); fp16 overflows are not counted
        first = next(e for e, s in zip(epochs, skipped) if s > 0)
        return Diagnosis("diverged", f"unstable: {skipped[-1]:.0f} optimizer steps had a non-finite loss and were "
                                     f"skipped, the first in epoch {first} {advice}", first)
    low = min(range(len(train)), key=train.__getitem__)
    rose, gained = train[-1] - train[low], train[0] - train[low]
    if 0 < train[low] and train[-1] >= RUNAWAY * train[low] and rose >= GAVE_BACK * gained:
        start = next(i for i in range(low, len(train)) if train[i] >= RUNAWAY * train[low])
        return Diagnosis("diverged", f"diverged at epoch {epochs[start]}: the training loss ran up from "
                                     f"{train[low]:.3g} (epoch {epochs[low]}) to {train[-1]:.3g} at the last "
                                     f"epoch (x{train[-1] / train[low]:.1f}) {advice}", epochs[start])
    return None


def _overfitting(epochs, train, val, jump) -> Diagnosis | None:
    """The validation loss turned up after its minimum while the training loss kept falling."""
    if not val:
        return None
    low = min(range(len(val)), key=val.__getitem__)
    if low > len(val) - 3 or train[-1] >= train[low] or val[low] <= 0:  # < 2 epochs after the minimum; both rise
        return None
    need = max(TURN, TURN_OVER_NOISE * jump)
    rise = val[-1] / val[low] - 1
    if rise < need or statistics.median(val[-3:]) / val[low] - 1 < need:
        return None
    return Diagnosis("overfitting", f"overfitting since epoch {epochs[low]}: validation loss up {rise:.0%} from its "
                                    f"minimum ({val[low]:.3g}) while training loss fell {_fall(train[low], train[-1])} "
                                    f"({train[low]:.3g} -> {train[-1]:.3g}) -> try dropout "
                                    f"(model.dropout), L2 (optim.weight_decay or loss.l2), early stopping "
                                    f"(early_stop.patience) or more data", epochs[low])


def _noisy(jump, flips, name) -> Diagnosis | None:
    if jump < NOISE or flips < FLIPS:
        return None
    return Diagnosis("noisy", f"noisy: the {name} jumps by {jump:.0%} between epochs (median, second half of the run) "
                              f"-> a smaller optim.lr or a larger train.batch_size")


def _underfitting(train, val, chance) -> Diagnosis | None:
    """Both losses still high: near the chance-level loss, or (no reference) barely below the first epoch."""
    last = min(train[-1], val[-1]) if val else train[-1]
    also = f"validation {val[-1]:.3g}; " if val else ""
    if chance:
        if last < UNDERFIT_OF_CHANCE * chance:
            return None
        if min(train) >= STUCK_AT_CHANCE * chance:
            return Diagnosis("underfitting", f"not learning: training loss at the chance level (~{chance:.3g}) in all "
                                             f"{len(train)} epochs ({also}last {train[-1]:.3g}) -> {STUCK}")
        return Diagnosis("underfitting", f"underfitting: training loss still {train[-1]:.3g} at the last epoch "
                                         f"({also}chance level ~{chance:.3g}) -> {BIGGER}")
    if train[-1] < (1 - UNDERFIT_FALL) * train[0] or (val and val[-1] < (1 - UNDERFIT_FALL) * val[0]):
        return None
    return Diagnosis("underfitting", f"underfitting: training loss fell only {_fall(train[0], train[-1])} from its "
                                     f"first epoch ({train[0]:.3g} -> {train[-1]:.3g}; {also}no chance level known) "
                                     f"-> {BIGGER}")


def _still_improving(curve, name, chance, stop_reason) -> Diagnosis | None:
    if chance and curve[-1] < SOLVED * chance:
        return None
    k = min(WINDOW, len(curve) - 1)
    before = min(curve[:-k])
    if before <= 0 or min(range(len(curve)), key=curve.__getitem__) < len(curve) - 2:
        return None
    gain = 1 - min(curve[-2:]) / before
    if gain < STILL_IMPROVING:
        return None
    advice = "more epochs (train.epochs)"
    stopper = re.match(r"early stopping: (\S+) did not improve", stop_reason or "")
    if stopper and stopper[1] != "val/loss":  # e.g. val/acc tied for `patience` epochs while the loss still fell
        advice = (f"early stopping on {stopper[1]} ended the run while the loss still fell: a larger "
                  f"early_stop.patience, or early_stop.monitor=val/loss")
    return Diagnosis("still_improving", f"still improving at the last epoch ({name} -{gain:.0%} over the last {k} "
                                        f"epochs, now {curve[-1]:.3g}) -> {advice}")


def _settled(epochs, train, curve, name) -> Diagnosis:
    """None of the pictures above: the loss stopped moving without turning up. Whether that is a good fit
    cannot be read from a loss curve (a small net stuck in a local minimum settles too: two hidden units
    on XOR at 0.75 accuracy), so the line says what is known and what to try if the result falls short."""
    low = min(range(len(curve)), key=curve.__getitem__)
    gap = f", training loss {train[-1]:.3g}" if curve is not train else ""
    return Diagnosis("settled", f"settled: the {name} has stopped falling ({curve[-1]:.3g} at the last epoch, best "
                                f"{curve[low]:.3g} at epoch {epochs[low]}{gap}) without turning up -> more epochs "
                                f"will not help; if the metric falls short, try a bigger model, another seed (a "
                                f"local minimum) or more data")


# ------------------------------------------------------------------------------------ helpers
def _noise(curve: list[float]) -> tuple[float, float]:
    """(median relative epoch-to-epoch change, share of sign flips between consecutive changes) over the
    second half of the run, where the first fast descent no longer counts as movement."""
    half = curve[len(curve) // 2 - 1:] if len(curve) >= 6 else curve
    changes = [b / a - 1 if a else 0.0 for a, b in zip(half, half[1:])]
    if len(changes) < 2:
        return 0.0, 0.0
    flips = sum((x > 0) != (y > 0) for x, y in zip(changes, changes[1:]) if x and y)
    return statistics.median(abs(c) for c in changes), flips / (len(changes) - 1)


def _fall(a: float, b: float) -> str:
    """How much a fell to b, in percent ('over 99%' rather than a rounded '100%'); 0% when it rose."""
    share = max(0.0, 1 - b / a) if a else 0.0
    return "over 99%" if share >= 0.995 else f"{share:.0%}"


def _epoch(row: Mapping, i: int) -> int:
    e = _num(row.get("epoch"))
    return int(e) if e is not None and math.isfinite(e) else i


def _num(v) -> float | None:
    """A row's value as a float (metrics.csv gives text); None when missing or not a number."""
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
