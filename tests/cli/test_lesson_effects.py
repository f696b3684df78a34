"""Lesson 6 recipes show what the slides say: overfitting, underfitting, and L2, dropout and early
stopping each beating the unregularised run on the test split, L1 giving sparse weights.

The moons recipes train a 256x256 MLP on 100 noisy points (full batch); here for 300 of their 600
epochs, where every effect already holds with a wide margin (seed 0; the recipes' comments give
the figures of seeds 0-4).
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import CONFIGS, metrics_rows, read_summary

QUICK = ("--set", "train.epochs=300", "--set", "logging.plots=false")
CHANCE = math.log(2)  # cross-entropy of a 50/50 guess between two classes


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these ops take microseconds, and on a busy 2-core machine two threads
    mostly wait for each other (measured: 600 epochs in 2.5 s with one thread, 20-40 s with two).
    The numbers are the same either way."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _curve(run_dir, key):
    return [float(r[key]) for r in metrics_rows(run_dir)]


def _test(run_dir):
    t = read_summary(run_dir)["test"]
    return t["test/acc"], t["test/loss"]


def _assert_better(reg_dir, plain_dir):
    """The regularised run beats the unregularised one on the test split: >= 3 points of accuracy
    and >= 15 % less loss (seed 0, 300 epochs: 6.6-8.6 points, 46-75 % less loss)."""
    (acc, loss), (acc0, loss0) = _test(reg_dir), _test(plain_dir)
    assert acc >= acc0 + 0.03, (acc, acc0)
    assert loss <= 0.85 * loss0, (loss, loss0)


def test_overfitting_recipe_overfits(dlsem, tmp_path):
    r = dlsem("train", CONFIGS / "moons_overfit.yaml", *QUICK, "--out", "run")
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["epochs_run"] == 300 and not s["stopped_early"] and not s["restored_best"]  # the last weights
    val, train = _curve(tmp_path / "run", "val/loss"), _curve(tmp_path / "run", "train/loss")
    best = val.index(min(val))
    assert best < len(val) // 4  # the turn comes early (epoch 6 for seed 0) ...
    assert val[-1] >= 1.2 * val[best]  # ... and the validation loss climbs well above it (3.5x at 300)
    assert train[-1] < 0.5 * train[best] and train[-1] == min(train)  # while the training loss keeps falling
    assert val[-1] > 3 * train[-1]


def test_early_stopping_beats_the_overfitted_run(dlsem, tmp_path):
    assert dlsem("train", CONFIGS / "moons_overfit.yaml", *QUICK, "--out", "plain").rc == 0
    r = dlsem("train", CONFIGS / "moons_early_stopping.yaml", *QUICK, "--out", "es")
    assert r.rc == 0, r
    s = read_summary(tmp_path / "es")
    assert s["stopped_early"] and s["restored_best"] and s["epochs_run"] == s["best_epoch"] + 20 < 100
    _assert_better(tmp_path / "es", tmp_path / "plain")


def test_dropout_beats_the_overfitted_run(dlsem, tmp_path):
    r = dlsem("sweep", CONFIGS / "moons_mlp_dropout.yaml", "--grid", "model.dropout=0,0.5", *QUICK, "--out", "sw")
    assert r.rc == 0, r
    _assert_better(tmp_path / "sw/model.dropout=0.5", tmp_path / "sw/model.dropout=0")


def test_l2_beats_the_overfitted_run_and_l1_makes_weights_zero(dlsem, tmp_path):
    r = dlsem("sweep", CONFIGS / "moons_regularisation.yaml", "--grid", "loss.l1=0,0.001", "--grid", "loss.l2=0,0.01",
              *QUICK, "--out", "sw")
    assert r.rc == 0, r
    plain, l2, l1 = (tmp_path / "sw" / f"loss.l1={a},loss.l2={b}" for a, b in (("0", "0"), ("0", "0.01"), ("0.001", "0")))
    _assert_better(l2, plain)

    def first_layer_near_zero(run_dir):  # share of the first layer's weights with |w| < 1e-3, at the last epoch
        h = read_summary(run_dir)["health"]
        return h["near_zero"][h["layers"][0]][-1]

    share = {name: first_layer_near_zero(d) for name, d in (("L1", l1), ("L2", l2), ("neither", plain))}
    print(f"first-layer near-zero share: {share}")  # seed 0, 300 epochs: L1 0.32, L2 0.07, neither 0.00
    assert share["L1"] > 0.2 and share["L1"] > 3 * share["L2"] and share["neither"] < 0.02, share


def test_underfitting_recipe_stays_at_chance_until_the_model_grows(dlsem, tmp_path):
    args = ("train", CONFIGS / "circles_underfit.yaml", "--epochs", "30", "--set", "logging.plots=false")
    assert dlsem(*args, "--out", "line").rc == 0
    assert dlsem(*args, "--set", "model.name=mlp", "--out", "mlp").rc == 0
    for key in ("train/loss", "val/loss"):
        curve = _curve(tmp_path / "line", key)
        assert min(curve[len(curve) // 2:]) > 0.95 * CHANCE, (key, curve)  # both stay high: the model is too small
    assert _test(tmp_path / "line")[0] < 0.65
    acc, loss = _test(tmp_path / "mlp")  # the same data with hidden units: fitted
    assert acc > 0.95 and loss < 0.2


def test_batch_norm_recipe_trains_the_deep_sigmoid_net_that_does_not_learn_without_it(dlsem, tmp_path):
    """configs/digits_batchnorm.yaml, both sides of its sweep, 6 of its 30 epochs."""
    args = ("train", CONFIGS / "digits_batchnorm.yaml", "--epochs", "6", "--set", "logging.plots=false")
    assert dlsem(*args, "--out", "bn").rc == 0
    assert dlsem(*args, "--set", "model.batch_norm=false", "--out", "plain").rc == 0
    chance = math.log(10)
    plain, bn = read_summary(tmp_path / "plain"), read_summary(tmp_path / "bn")
    assert min(_curve(tmp_path / "plain", "train/loss")) > 0.99 * chance  # never left the chance level
    assert plain["test"]["test/acc"] < 0.2 and plain["diagnosis"]["line"].startswith("not learning")
    assert bn["test"]["test/acc"] > 0.8
    # why: the first layer's gradient is lost on its way down without BN, and arrives with it
    assert max(plain["health"]["first_to_last_grad"]) < 1e-3 < 0.1 < min(bn["health"]["first_to_last_grad"])
    assert bn["health"]["preact_batch_norm"] and not plain["health"]["preact_batch_norm"]
