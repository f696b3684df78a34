"""The diagnosis read from a run's curves: synthetic histories for every verdict, and the edges
(too few epochs, nan, no validation loss, metrics.csv text, any loss scale)."""
from __future__ import annotations

import math
import re

import pytest

from dlseminar.config import SCHEMA
from dlseminar.diagnosis import Diagnosis, Kind, chance_loss, diagnose


def rows(train, val=None, **extra):
    """Per-epoch rows as the Trainer records them (epochs from 1)."""
    out = []
    for i, t in enumerate(train):
        r = {"epoch": i + 1, "lr": 0.001, "train/loss": t}
        if val is not None:
            r["val/loss"] = val[i]
        r.update({k: v[i] for k, v in extra.items()})
        out.append(r)
    return out


def decay(start, rate, n, floor=0.0):
    return [floor + (start - floor) * rate ** i for i in range(n)]


TRAIN = decay(0.7, 0.85, 20, floor=0.02)  # keeps falling to the end
# validation: down to its minimum at epoch 8, then up 4 % an epoch (the classic turn)
VAL_TURN = decay(0.7, 0.8, 8, floor=0.2)
VAL_TURN += [VAL_TURN[-1] * 1.04 ** k for k in range(1, 13)]
FLAT = decay(0.7, 0.5, 8, floor=0.3) + [0.3] * 12  # settled from epoch 9 on
ZIGZAG = [0.4 * (1.25 if i % 2 else 0.8) for i in range(20)]  # +-25 % every epoch


def test_overfitting_names_the_epoch_of_the_minimum_and_both_changes():
    d = diagnose(rows(TRAIN, VAL_TURN))
    assert d.kind == "overfitting" and d.epoch == 8
    rise = VAL_TURN[-1] / VAL_TURN[7] - 1
    fell = 1 - TRAIN[-1] / TRAIN[7]
    assert d.line.startswith(f"overfitting since epoch 8: validation loss up {rise:.0%} from its minimum")
    assert f"training loss fell {fell:.0%}" in d.line
    assert "model.dropout" in d.line and "optim.weight_decay" in d.line and "early_stop.patience" in d.line


def test_a_turn_that_the_training_loss_shares_is_not_overfitting():
    train = TRAIN[:8] + [TRAIN[7] * 1.02 ** k for k in range(1, 13)]  # both rise (gently): no overfitting
    assert diagnose(rows(train, VAL_TURN)).kind != "overfitting"


def test_a_noisy_curve_whose_last_epochs_sit_above_a_lucky_low_is_noisy_not_overfitting():
    val = [0.6, 0.5, 0.45] + ZIGZAG[1:18]  # its lowest at epoch 5, and 56 % above it at the end
    assert val[-1] == pytest.approx(1.5625 * min(val))
    d = diagnose(rows(TRAIN, val))
    assert d.kind == "noisy"
    assert re.search(r"validation loss jumps by \d+% between epochs", d.line) and "optim.lr" in d.line
    assert "train.batch_size" in d.line


def test_underfitting_against_the_chance_level_of_cross_entropy():
    train = [0.70, 0.69, 0.685, 0.68, 0.68, 0.679, 0.678, 0.678]
    val = [0.695, 0.69, 0.688, 0.687, 0.686, 0.686, 0.685, 0.685]
    d = diagnose(rows(train, val), chance=chance_loss("ce", 2))
    assert d.kind == "underfitting"
    assert "training loss still 0.678 at the last epoch (validation 0.685; chance level ~0.693)" in d.line
    assert "model.hidden" in d.line and "train.epochs" in d.line
    # the same curves, 0.3 lower: well below 60 % of chance, a model that learned
    learned = diagnose(rows([t - 0.4 for t in train], [v - 0.4 for v in val]), chance=math.log(2))
    assert learned.kind != "underfitting"


def test_a_loss_that_never_left_the_chance_level_is_not_learning_not_a_small_model():
    chance = chance_loss("ce", 10)  # ln 10 = 2.303: the deep sigmoid MLP without batch norm on the digits
    train = [2.32, 2.305, 2.303, 2.303, 2.302, 2.303]
    d = diagnose(rows(train, [2.303] * 6), chance=chance)
    assert d.kind == "underfitting"
    assert d.line.startswith("not learning: training loss at the chance level (~2.3) in all 6 epochs")
    assert "model.batch_norm" in d.line and "train.health" in d.line and "model.hidden" in d.line
    assert "more epochs" not in d.line  # 30 more epochs at chance teach nothing
    # 2 % below chance at one epoch: it learned something, and the usual advice stands
    d = diagnose(rows([*train[:-1], 0.98 * chance], [2.303] * 6), chance=chance)
    assert d.line.startswith("underfitting: training loss still") and "train.epochs" in d.line


def test_underfitting_without_a_reference_is_a_training_loss_that_barely_fell():
    train = [300.0, 296, 294, 292, 291, 290, 289, 288]  # a regression MSE: -4 % in 8 epochs
    val = [305.0, 300, 298, 297, 296, 295, 295, 294]
    d = diagnose(rows(train, val))
    assert d.kind == "underfitting" and "fell only 4% from its first epoch (300 -> 288; validation 294" in d.line


@pytest.mark.parametrize("n", [6, 12, 30])
def test_still_improving_reports_the_last_epochs_gain(n):
    train, val = decay(1.0, 0.9, n), decay(1.1, 0.9, n)
    d = diagnose(rows(train, val))
    assert d.kind == "still_improving" and "train.epochs" in d.line
    k = min(5, n - 1)
    gain = 1 - val[-1] / val[-1 - k]
    assert f"validation loss -{gain:.0%} over the last {k} epochs" in d.line


def test_still_improving_after_early_stopping_on_accuracy_names_the_stopper():
    train, val = decay(1.0, 0.9, 14), decay(1.1, 0.9, 14)
    d = diagnose(rows(train, val), "early stopping: val/acc did not improve for 10 epochs (best 0.95 at epoch 4)")
    assert d.kind == "still_improving"
    assert "early stopping on val/acc ended the run" in d.line and "early_stop.patience" in d.line
    assert "train.epochs" not in d.line  # more epochs would be stopped again the same way
    same = diagnose(rows(train, val), "early stopping: val/loss did not improve for 10 epochs")
    assert "train.epochs" in same.line


def test_a_solved_problem_still_creeping_down_is_not_told_to_train_longer():
    train, val = decay(0.01, 0.7, 12), decay(0.012, 0.7, 12)  # xor: 0.0002 and falling
    assert diagnose(rows(train, val)).kind == "still_improving"  # no reference: it cannot know
    assert diagnose(rows(train, val), chance=math.log(2)).kind == "settled"


def test_settled_is_a_flat_curve_near_its_best():
    val = decay(0.8, 0.6, 8, floor=0.25) + [0.25 * (1 + 0.004 * (-1) ** i) for i in range(12)]  # +-0.4 %
    d = diagnose(rows(TRAIN, val), chance=math.log(2))
    assert d.kind == "settled" and d.epoch is None
    assert d.line.startswith("settled: the validation loss has stopped falling (0.249 at the last epoch, best 0.249 at epoch 10")


def test_diverged_names_the_epoch_and_step_of_the_stop():
    train = [0.7, 0.5, 0.4, 0.35, math.nan]
    reason = ("the training loss is not finite at epoch 5, step 17: training diverged "
              "(try a lower optim.lr, train.grad_clip or train.on_nan: skip)")
    d = diagnose(rows(train, [0.6, 0.45, 0.4, 0.38, 0.37]), stop_reason=reason)
    assert d == Diagnosis("diverged", "diverged at epoch 5, step 17: the loss ran to inf/nan -> a lower optim.lr "
                                      "(or train.grad_clip)", 5)


@pytest.mark.parametrize("history, reason, epoch", [
    (rows([0.7, 0.6, 0.5], [0.6, math.inf, 0.5]), None, 2),  # an inf validation loss, no stop reason given
    (rows([math.nan]), None, 1),  # one epoch is enough to see a nan
    # early stopping's words for a non-finite monitor; the losses themselves still numbers
    (rows([0.7, 0.6, 0.5, 0.45], [0.6, 0.5, 0.45, 0.4]), "val/acc is not finite (nan) at epoch 4: training diverged "
                                                          "(try a lower optim.lr)", 4),
])
def test_diverged_from_non_finite_values_or_the_stop_reason(history, reason, epoch):
    d = diagnose(history, stop_reason=reason)
    assert d.kind == "diverged" and d.epoch == epoch and f"diverged at epoch {epoch}:" in d.line


def test_skipped_steps_and_a_runaway_loss_are_divergence_too():
    skipped = diagnose(rows(TRAIN, VAL_TURN, **{"train/skipped_steps": [0] * 5 + [2] * 10 + [7] * 5}))
    assert skipped.kind == "diverged" and skipped.epoch == 6
    assert skipped.line.startswith("unstable: 7 optimizer steps had a non-finite loss and were skipped, the first in epoch 6")
    runaway = [0.7, 0.5, 0.4, 0.45, 0.9, 1.8, 2.4, 2.4]  # an lr too large: no nan, the loss just leaves
    d = diagnose(rows(runaway, [v * 1.1 for v in runaway]))
    assert d.kind == "diverged" and d.epoch == 5  # the first epoch 1.5x above the lowest
    assert f"ran up from 0.4 (epoch 3) to 2.4 at the last epoch (x{2.4 / 0.4:.1f})" in d.line
    # a tiny late loss that wobbles up 60 % has given back almost nothing of its descent: no run away
    wobble = decay(0.7, 0.5, 12, floor=0.0) + [0.0006, 0.0005, 0.0008]
    assert diagnose(rows(wobble, [w + 0.1 for w in wobble])).kind != "diverged"


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_three_epochs_or_fewer_are_too_few_to_read(n):
    d = diagnose(rows(TRAIN[:n], VAL_TURN[:n]), chance=math.log(2))
    assert d.kind == "too_short" and f"{n} epoch" in d.line and "train.epochs" in d.line and d.epoch is None


def test_without_validation_loss_the_training_loss_is_read_and_overfitting_is_never_claimed():
    # a detector records no val/loss: only its own metrics (val/map50 ...)
    d = diagnose(rows(decay(2.0, 0.85, 10), **{"val/map50": [0.1 * i for i in range(10)]}))
    assert d.kind == "still_improving" and "(training loss -" in d.line
    flat = diagnose(rows(FLAT, **{"val/map50": [0.5] * 20}))
    assert flat.kind == "settled" and "training loss has stopped falling" in flat.line
    # a val/loss in some rows only is no curve either
    partial = rows(TRAIN, VAL_TURN)
    del partial[3]["val/loss"]
    assert diagnose(partial).kind != "overfitting"


def test_metrics_csv_text_reads_like_numbers_and_the_loss_scale_does_not_matter():
    history = rows(TRAIN, VAL_TURN)
    text = [{k: repr(v) if isinstance(v, float) else str(v) for k, v in r.items()} for r in history]
    assert diagnose(text) == diagnose(history)
    # a regression or segmentation loss 1000x larger, or 1000x smaller: the same picture, the same epoch
    for scale in (1000.0, 0.001):
        d = diagnose(rows([t * scale for t in TRAIN], [v * scale for v in VAL_TURN]))
        assert d.kind == "overfitting" and d.epoch == 8


def test_a_loss_that_reaches_zero_is_read_without_dividing_by_it():
    exact = [0.5, 0.1, 0.0, 0.0, 0.0, 0.0]  # a perfect fit (MAE on a noiseless plane)
    assert diagnose(rows(exact, exact)).kind == "settled"
    assert diagnose(rows([0.0] * 6, [0.0, 0.0, 0.0, 0.1, 0.2, 0.3])).kind != "overfitting"


def test_chance_loss():
    assert chance_loss("ce", 2) == pytest.approx(math.log(2)) and chance_loss("nll", 10) == pytest.approx(math.log(10))
    assert chance_loss("bce", 2) == pytest.approx(math.log(2))  # one sigmoid at 0.5
    assert chance_loss("bce", 4) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert chance_loss("mse", 2) == pytest.approx(0.25)
    assert chance_loss("mae", 3) is None and chance_loss("ce", 1) is None and chance_loss("ce", None) is None


def test_every_config_key_the_advice_names_exists():
    verdicts = [diagnose(h, chance=c) for h, c in [
        (rows(TRAIN, VAL_TURN), None),
        (rows([0.7, 0.69, 0.69, 0.69], [0.7] * 4), math.log(2)),  # not learning at all
        (rows([0.7, 0.68, 0.675, 0.675], [0.7] * 4), math.log(2)),  # learning too little
        (rows(decay(1.0, 0.9, 10), decay(1.1, 0.9, 10)), None),
        (rows([0.7, math.nan]), None),
        (rows(TRAIN, ZIGZAG), None),
        (rows([0.5]), None),
        (rows(FLAT, FLAT), None),
    ]]
    assert {d.kind for d in verdicts} == set(Kind.__args__)  # each verdict (underfitting's two lines)
    lines = [d.line for d in verdicts]
    named = {k for line in lines for k in re.findall(r"\b[a-z_]+\.[a-z_0-9]+\b", line)}
    assert named >= {"optim.lr", "optim.weight_decay", "loss.l2", "model.dropout", "early_stop.patience",
                     "train.epochs", "train.batch_size", "train.grad_clip", "model.hidden"}
    assert named <= set(SCHEMA), named - set(SCHEMA)
