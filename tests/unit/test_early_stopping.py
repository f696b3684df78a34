"""Early stopping's best epoch: ties in the monitor go to the lower val/loss (else the later epoch),
patience counts only real improvements, and the state survives a checkpoint round trip."""
from __future__ import annotations

import torch

from dlseminar.engine.callbacks import EarlyStopping
from conftest import metrics_rows, read_summary


def _run(es: EarlyStopping, rows: list[dict], model=None) -> list[str | None]:
    """Feed `rows` (epochs 1..n) to `es` until it stops, as the Trainer does; each epoch's weights are
    filled with its number, so the snapshot kept tells which epoch it came from. Returns the stop reasons."""
    model = model or torch.nn.Linear(1, 1)
    reasons = []
    for epoch, row in enumerate(rows, 1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        reasons.append(es.update(epoch, row, model))
        if reasons[-1]:
            break
    return reasons


def _acc(accs, losses=None):
    return [{"val/acc": a, **({} if losses is None else {"val/loss": lo})}
            for a, lo in zip(accs, losses or [None] * len(accs))]


def test_a_tie_goes_to_the_lower_val_loss_and_writes_best_pt():
    es = EarlyStopping("val/acc", "max", patience=0, min_delta=0.0)
    model = torch.nn.Linear(1, 1)
    improved = []
    for epoch, row in enumerate(_acc([0.84, 0.84, 0.84, 0.80, 0.84], [0.60, 0.40, 0.45, 0.30, 0.35]), 1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        es.update(epoch, row, model)
        improved.append(es.improved)  # what the Trainer turns into a best.pt write
    assert es.best_epoch == 5 and es.best == 0.84 and es.best_loss == 0.35
    assert improved == [True, True, False, False, True]  # epoch 4's lower loss is no tie: its accuracy fell
    assert es.best_state["weight"].item() == 5


def test_without_val_loss_the_later_tied_epoch_wins():
    es = EarlyStopping("val/map50", "max", patience=0, min_delta=0.0)  # a detector records no val/loss
    _run(es, [{"val/map50": v} for v in (0.5, 0.7, 0.7, 0.6, 0.7)])
    assert es.best_epoch == 5 and es.best_state["weight"].item() == 5


def test_ties_do_not_reset_patience():
    # a plateau of equal accuracy whose loss keeps falling: without the rule it would never stop
    es = EarlyStopping("val/acc", "max", patience=3, min_delta=0.0)
    reasons = _run(es, _acc([0.9] * 10, [1.0 - 0.05 * i for i in range(10)]))
    assert len(reasons) == 4 and reasons[-1] is not None  # 3 epochs past epoch 1, as without the tie-break
    assert reasons[3].startswith("early stopping: val/acc did not improve for 3 epochs")
    assert "(best 0.9 at epoch 4, tied with epoch 1: lower val/loss)" in reasons[3]
    assert es.best_epoch == 4


def test_min_delta_ties_are_measured_from_the_last_improvement():
    # min_delta 0.02: 0.905 and 0.915 are ties of 0.90 (better by no more than min_delta), 0.899 is worse;
    # 0.93 improves (by more than 0.02) and resets patience and the reference
    es = EarlyStopping("val/acc", "max", patience=0, min_delta=0.02)
    _run(es, _acc([0.90, 0.905, 0.899, 0.915], [0.5, 0.6, 0.1, 0.4]))
    assert es.best_epoch == 4 and es.reference == 0.90 and es.bad_epochs == 3
    es = EarlyStopping("val/acc", "max", patience=0, min_delta=0.02)
    _run(es, _acc([0.90, 0.91, 0.93], [0.5, 0.4, 0.6]))
    assert es.best_epoch == 3 and es.reference == 0.93 and es.bad_epochs == 0
    # no drift: a chain of small steps within min_delta of the reference never counts as an improvement
    es = EarlyStopping("val/acc", "max", patience=5, min_delta=0.02)
    reasons = _run(es, _acc([0.90, 0.91, 0.915, 0.918, 0.919, 0.919], [0.5, 0.4, 0.3, 0.2, 0.1, 0.1]))
    assert reasons[-1] is not None and es.best_epoch == 6 and es.reference == 0.90


def test_min_mode_ties_keep_the_lowest_loss_within_min_delta():
    es = EarlyStopping("val/loss", "min", patience=0, min_delta=0.01)
    _run(es, [{"val/loss": v} for v in (0.50, 0.495, 0.492, 0.497, 0.501)])
    assert es.best_epoch == 3 and es.reference == 0.50  # 0.501 is worse than the reference: no tie


def test_a_non_finite_loss_never_wins_a_tie():
    es = EarlyStopping("val/acc", "max", patience=0, min_delta=0.0)
    _run(es, _acc([0.8, 0.8, 0.8], [0.5, float("nan"), 0.6]))
    assert es.best_epoch == 1


def test_state_dict_round_trip_continues_exactly_and_old_checkpoints_load():
    rows = _acc([0.8, 0.9, 0.9, 0.85, 0.9, 0.9], [0.6, 0.5, 0.55, 0.4, 0.45, 0.46])  # stops at epoch 6
    whole = EarlyStopping("val/acc", "max", patience=4, min_delta=0.0)
    want = _run(whole, rows)
    first = EarlyStopping("val/acc", "max", patience=4, min_delta=0.0)
    _run(first, rows[:4])
    d = first.state_dict()
    second = EarlyStopping("val/acc", "max", patience=4, min_delta=0.0)
    second.load_state_dict(d)
    model = torch.nn.Linear(1, 1)
    got = []
    for epoch, row in enumerate(rows[4:], 5):
        with torch.no_grad():
            model.weight.fill_(epoch)
        got.append(second.update(epoch, row, model))
    assert got == want[4:] and got[-1] is not None and second.best_epoch == whole.best_epoch == 5
    assert torch.equal(second.best_state["weight"], whole.best_state["weight"])
    # a last.pt written before the tie-break has no reference nor best_loss: its best is the last improvement
    old = {k: v for k, v in d.items() if k not in ("reference", "best_loss")}
    es = EarlyStopping("val/acc", "max", patience=4, min_delta=0.0)
    es.load_state_dict(old)
    assert es.reference == es.best == 0.9 and es.best_loss is None and es.best_epoch == 2
    es.update(5, {"val/acc": 0.9, "val/loss": 0.45}, model)
    assert es.best_epoch == 5 and es.best_loss == 0.45


# --------------------------------------------------------------------------- end to end
TOUR = ["train", "--data", "moons", "--model", "mlp", "--set", "model.hidden=[64,64]",
        "--set", "model.activation=elu", "--set", "logging.plots=false"]


def test_readme_tour_restores_the_tied_epoch_with_the_lowest_val_loss_and_resumes_exactly(dlsem, tmp_path):
    """The README's moons command: val/acc reaches its best (0.93) at epoch 1 and ties it later; the
    first-tie rule restored epoch 1, a nearly straight boundary (val/loss 0.42)."""
    r = dlsem(*TOUR, "--out", "full")
    assert r.rc == 0, r
    s, rows = read_summary(tmp_path / "full"), metrics_rows(tmp_path / "full")
    top = max(float(x["val/acc"]) for x in rows)
    tied = [x for x in rows if float(x["val/acc"]) == top]
    want = min(tied, key=lambda x: (float(x["val/loss"]), -int(x["epoch"])))
    assert len(tied) > 1 and int(tied[0]["epoch"]) < int(want["epoch"])  # the case the rule is for
    assert s["best_epoch"] == int(want["epoch"]) and s["restored_best"] is True
    # patience still counts from the first epoch at that accuracy, not from the tie that won
    assert s["epochs_run"] == int(tied[0]["epoch"]) + s["patience"]
    assert f"tied with epoch {tied[0]['epoch']}: lower val/loss" in s["stop_reason"]
    best = torch.load(tmp_path / "full" / "best.pt", weights_only=True)
    assert best["epoch"] == s["best_epoch"] and best["metrics"]["val/loss"] == float(want["val/loss"])

    # cut after the winning tie and one more epoch (last.pt then carries a copy of the best weights), resume
    cut = s["best_epoch"] + 1
    assert dlsem(*TOUR, "--out", "part", "--epochs", str(cut)).rc == 0
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["early_stopping"]["best_is_current"] is False
    r = dlsem("train", "--resume", "part/last.pt", "--epochs", "30")
    assert r.rc == 0, r
    resumed = read_summary(tmp_path / "part")
    assert {k: resumed[k] for k in ("best_epoch", "epochs_run", "stop_reason", "test")} == \
        {k: s[k] for k in ("best_epoch", "epochs_run", "stop_reason", "test")}
    assert metrics_rows(tmp_path / "part") == rows and resumed["restored_best"] is True
