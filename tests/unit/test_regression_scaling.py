"""Regression targets are standardised like the features (train split only) and everything a user reads
(metrics, summary.json, the perceptron's weights) is in the data's own units; the scale travels in the
checkpoint so eval and --resume reproduce, and a checkpoint without it loads as mean 0, std 1."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import metrics_rows, read_summary
from dlseminar import assemble, catalog, config
from dlseminar.data import split_indices
from dlseminar.datasets.tabular import diabetes
from dlseminar.models.perceptron import Perceptron

catalog.load_all()
QUIET = ["--set", "logging.plots=false", "--set", "checkpoint.min_interval_s=0"]
# Batch gradient descent run to convergence, the final weights kept: the least-squares solution. The
# defaults (Adam 1e-3, 30 epochs of batches of 32, best-val weights restored) stop well short of it.
CONVERGE = ["--batch-size", "full", "--lr", "0.1", "--epochs", "200", "--patience", "0",
            "--set", "early_stop.restore_best=false"]


@pytest.mark.parametrize("seed", [0, 1])
def test_perceptron_on_diabetes_is_linear_regression(dlsem, tmp_path, seed):
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    t = diabetes()
    parts = split_indices(len(t.y), 0.2, 0.2, seed)  # the defaults' val_split and test_split
    cfg = config.resolve(sets=["data.name=diabetes", f"seed={seed}"])
    data = assemble.build(cfg).data
    np.testing.assert_array_equal(data.splits["train"][1][:, 0].numpy(), t.y[parts["train"]].astype(np.float32))
    np.testing.assert_array_equal(data.splits["test"][1][:, 0].numpy(), t.y[parts["test"]].astype(np.float32))

    r = dlsem("train", "--data", "diabetes", "--model", "perceptron", "--seed", seed, *CONVERGE, "--out", "run", *QUIET)
    assert r.rc == 0, r
    ours = read_summary(tmp_path / "run")["test"]["test/r2"]
    lin = LinearRegression().fit(t.X[parts["train"]], t.y[parts["train"]])
    theirs = r2_score(t.y[parts["test"]], lin.predict(t.X[parts["test"]]))
    print(f"seed {seed}: perceptron test R2 {ours:.4f}, LinearRegression {theirs:.4f}")
    assert abs(ours - theirs) <= 0.02
    # the weights it prints are the regression's coefficients in the data's units
    w = read_summary(tmp_path / "run")["weights"]
    np.testing.assert_allclose(w["w"], lin.coef_, rtol=0.05, atol=5.0)
    assert w["w0"] == pytest.approx(lin.intercept_, abs=2.0)


def test_default_mlp_on_diabetes_beats_the_mean(dlsem, tmp_path):
    r = dlsem("train", "--data", "diabetes", "--out", "run", *QUIET)
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["model"] == "mlp" and s["test"]["test/r2"] > 0.3, s["test"]


def test_scale_is_fitted_on_train_and_metrics_are_in_the_data_units(dlsem, tmp_path):
    r = dlsem("train", "--data", "diabetes", "--model", "perceptron", "--epochs", "3", "--out", "run", *QUIET)
    assert r.rc == 0, r
    ck = torch.load(tmp_path / "run/best.pt", weights_only=True)
    cfg = config.resolve(base=ck["config"])
    setup = assemble.build(cfg)
    y_train = setup.data.splits["train"][1].double()
    stats = ck["data_stats"]
    assert torch.allclose(stats["target_mean"], y_train.mean(0), rtol=1e-6)
    assert torch.allclose(stats["target_std"], y_train.std(0, unbiased=False), rtol=1e-5)
    assert ck["data_info"]["target_mean"] == stats["target_mean"].tolist()
    # test metrics by hand: standardised outputs turned back into the data's units
    setup.model.load_state_dict(ck["model"])
    X, y = setup.data.splits["test"]
    with torch.no_grad():
        pred = setup.model(X).double() * stats["target_std"] + stats["target_mean"]
    mse = float(((pred - y.double()) ** 2).mean())
    s = read_summary(tmp_path / "run")["test"]
    assert s["test/mse"] == pytest.approx(mse, rel=1e-9)
    assert s["test/mae"] == pytest.approx(float((pred - y.double()).abs().mean()), rel=1e-9)
    assert s["test/loss"] == pytest.approx(mse / float(stats["target_std"][0]) ** 2, rel=1e-4)  # the loss: scaled
    # predictions are in the data's units too
    with torch.no_grad():
        assert torch.allclose(setup.task.predict(setup.model, X), pred)


def test_eval_and_resume_reproduce_with_the_stored_scale(dlsem, tmp_path):
    args = ["train", "--data", "diabetes", "--model", "perceptron", "--patience", "0", *QUIET]
    assert dlsem(*args, "--epochs", "6", "--out", "full").rc == 0
    assert dlsem(*args, "--epochs", "3", "--out", "part").rc == 0
    r = dlsem("train", "--resume", "part/last.pt", "--epochs", "6")
    assert r.rc == 0, r
    assert metrics_rows(tmp_path / "full") == metrics_rows(tmp_path / "part")
    s = read_summary(tmp_path / "full")
    assert read_summary(tmp_path / "part")["test"] == s["test"]
    e = dlsem("eval", "full/best.pt", "--json")
    assert e.rc == 0, e
    assert json.loads(e.out) == s["test"]  # exactly


def test_checkpoint_without_target_stats_loads_as_mean_0_std_1(dlsem, tmp_path):
    """An older checkpoint's model predicts in the data's units: fold the scale into the last layer and
    drop the stats, and eval gives the same numbers (the loss is then the unscaled mse)."""
    assert dlsem("train", "--data", "diabetes", "--model", "perceptron", "--epochs", "3", "--out", "run", *QUIET).rc == 0
    ck = torch.load(tmp_path / "run/best.pt", weights_only=True)
    mean, std = ck["data_stats"].pop("target_mean"), ck["data_stats"].pop("target_std")
    for k in ("target_mean", "target_std"):
        ck["data_info"].pop(k)
    w, b = ck["model"]["linear.weight"].double(), ck["model"]["linear.bias"].double()
    ck["model"]["linear.weight"] = (w * std[:, None]).float()
    ck["model"]["linear.bias"] = (b * std + mean).float()
    torch.save(ck, tmp_path / "old.pt")
    new = json.loads(dlsem("eval", "run/best.pt", "--json").out)
    r = dlsem("eval", "old.pt", "--json")
    assert r.rc == 0, r
    old = json.loads(r.out)
    for k in ("test/mse", "test/mae", "test/r2"):
        assert old[k] == pytest.approx(new[k], rel=1e-5), k
    assert old["test/loss"] == pytest.approx(old["test/mse"], rel=1e-5)


def test_standardize_false_leaves_the_targets_alone(dlsem, tmp_path):
    r = dlsem("train", "--data", "plane", "--model", "perceptron", "--epochs", "2", "--set", "data.standardize=false",
              "--out", "run", *QUIET)
    assert r.rc == 0, r
    ck = torch.load(tmp_path / "run/best.pt", weights_only=True)
    assert "target_mean" not in ck["data_stats"] and ck["data_info"]["target_mean"] == []
    s = read_summary(tmp_path / "run")["test"]
    assert s["test/loss"] == pytest.approx(s["test/mse"], rel=1e-5)


def test_explain_undoes_feature_and_target_scaling():
    p = Perceptron(2, 1)
    with torch.no_grad():
        p.linear.weight.copy_(torch.tensor([[2.0, -1.0]]))
        p.linear.bias.fill_(0.5)
    mean, std = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])
    tm, ts = torch.tensor([100.0], dtype=torch.float64), torch.tensor([10.0], dtype=torch.float64)
    w = p.explain(mean, std, tm, ts)["weights"]
    x = torch.tensor([3.0, -1.0])
    expected = 100.0 + 10.0 * p.linear(((x - mean) / std)[None])[0, 0].item()
    assert w["w0"] + sum(a * b for a, b in zip(w["w"], x.tolist())) == pytest.approx(expected, abs=1e-4)
    assert w["w"] == pytest.approx([10.0, -2.5])
