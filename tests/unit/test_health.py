"""train.health: the vanishing-gradient and L1-sparsity lessons hold, measured by dlseminar.health."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import CONFIGS, metrics_rows
from dlseminar import run
from dlseminar.config import resolve
from dlseminar.engine import checkpoint as ckpt
from dlseminar.health import Health

DEEP = "model.hidden=[32,32,32,32,32,32,32,32,32]"  # 9 hidden layers + the output layer: 10 weight matrices


def _train(tmp_path, name, path=None, sets=()):
    cfg = resolve(path, [*sets, f"out={tmp_path / name}"])
    return run.train(cfg)


@pytest.fixture(scope="module")
def deep_runs(tmp_path_factory):
    """One epoch of a 10-layer MLP on digits, sigmoid and ReLU, same He init (the lesson compares activations)."""
    tmp = tmp_path_factory.mktemp("deep")
    out = {}
    for act in ("sigmoid", "relu"):
        plots = "true" if act == "relu" else "false"
        out[act] = _train(tmp, act, sets=[DEEP, f"model.activation={act}", "model.init=kaiming_normal",
                                          "train.epochs=1", "train.health=true", f"logging.plots={plots}"])
    return out


def test_sigmoid_gradients_vanish_and_relu_gradients_do_not(deep_runs):
    ratios = {}
    for act, (run_dir, s) in deep_runs.items():
        h = s.health
        assert len(h["layers"]) == 10 and h["epochs"] == [1]
        first, last = h["grad_norm"][h["layers"][0]][0], h["grad_norm"][h["layers"][-1]][0]
        ratios[act] = last / first
        assert h["first_to_last_grad"][0] == pytest.approx(first / last)
    print(f"last/first layer gradient norm, epoch 1: {ratios}")
    assert ratios["sigmoid"] >= 100, ratios  # measured ~1e4
    assert ratios["relu"] < 10, ratios  # measured ~0.7


def test_health_summary_and_plot(deep_runs):
    run_dir, s = deep_runs["relu"]
    h = json.loads((run_dir / "summary.json").read_text())["health"]
    weights = ckpt.load(run_dir / "last.pt")["model"]
    assert h["relu_layers"] == [str(2 * i + 2) for i in range(9)]  # nn.Sequential names of the 9 ReLUs
    for name in h["relu_layers"]:
        assert len(h["dead_relu"][name]) == 1 and 0 <= h["dead_relu"][name][0] <= 1
    for name in h["layers"]:
        hist = h["weight_hist"][name][0]
        assert len(hist["counts"]) == 20 and sum(hist["counts"]) == weights[name].numel()
        assert 0 <= h["near_zero"][name][0] <= 1
    assert (run_dir / "plots" / "health.png").stat().st_size > 10_000
    assert "plots/health.png" in s.plots
    assert not (deep_runs["sigmoid"][0] / "plots" / "health.png").exists()  # logging.plots false


def test_l1_gives_more_near_zero_weights_than_l2(tmp_path):
    # SGD with momentum: the penalty's own gradient decides (Adam rescales it: under Adam, L1's constant-size
    # pull makes weights jitter around 0 at the scale of the lr, and L2 reaches |w| < 1e-3 more often)
    common = ["optim.name=momentum", "optim.lr=0.05", "train.epochs=15", "early_stop.patience=0",
              "train.health=true", "logging.plots=false",
              # mini-batches of the earlier moons_overfit data (the recipe is full-batch now: 15 steps only)
              "train.batch_size=16", "data.n_samples=200", "data.noise=0.35", "data.val_split=0.2",
              "data.test_split=0.2"]
    share = {}
    for pen in ("l1", "l2"):
        _, s = _train(tmp_path, pen, CONFIGS / "moons_overfit.yaml", [*common, f"loss.{pen}=0.001"])
        share[pen] = s.health["near_zero_all"][-1]
        assert len(s.health["near_zero_all"]) == 15
    print(f"near-zero share after 15 epochs: {share}")
    assert share["l1"] > 0.3 and share["l1"] > 5 * share["l2"], share


def test_health_leaves_training_unchanged_and_survives_resume(tmp_path):
    common = [CONFIGS / "moons_mlp_dropout.yaml",
              ["train.epochs=3", "early_stop.patience=0", "logging.plots=false", "data.n_samples=100"]]
    plain, _ = _train(tmp_path, "plain", common[0], common[1])
    cfg = resolve(common[0], [*common[1], "train.health=true", "train.epochs=2", f"out={tmp_path / 'health'}"])
    d, _ = run.train(cfg)
    d, s = run.train(None, resume=str(d / "last.pt"), sets=["train.epochs=3"])
    assert metrics_rows(d) == metrics_rows(plain)  # the probe draws no random numbers, updates nothing
    h = s.health
    assert h["epochs"] == [1, 2, 3] and all(len(v) == 3 for v in h["grad_norm"].values())


def test_dead_units_counted_per_unit_and_per_channel():
    torch.manual_seed(0)  # the live unit's step must not push it dead on the probe (it does for some states)
    lin = nn.Linear(3, 4)
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([-1.0, -1.0, -1.0, 1.0]))  # three units always 0 after the ReLU
        conv.weight.fill_(1.0)
        conv.bias.copy_(torch.tensor([-100.0, 0.0]))  # channel 0 dead
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 4), nn.Unflatten(1, (1, 2, 2)), conv, nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = Health(model, opt, probe=torch.rand(8, 3))
    model(torch.rand(8, 3)).sum().backward()
    opt.step()
    h.epoch_end(1, model, {})
    s = h.summary()
    assert s["relu_layers"] == ["1", "5"]
    assert s["dead_relu"]["1"] == [0.75]
    assert s["dead_relu"]["5"][0] >= 0.5  # channel 0 at least; channel 1 may die too (random weights before)
    assert s["layers"] == ["0.weight", "2.weight", "4.weight"]
    assert s["grad_norm"]["2.weight"][0] > 0 and len(s["weight_hist"]["4.weight"][0]["counts"]) == 20
    h.close()
