"""The batch-norm lesson from train.health (dlseminar/health.py, viz/health.py: plots/bn.png): the recorded
quantiles are those of the real pre-activations, before and after batch norm, and bn.png draws them."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import CONFIGS
from dlseminar.health import QUANTILES, SAMPLED, Health, Preactivations, quantiles


@pytest.fixture(autouse=True)
def _own_random_numbers():
    """These tests seed torch's global generator; the tests after them find it as they would without them."""
    with torch.random.fork_rng():
        yield


def _hooked(module: nn.Module, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, output) of `module` in one forward pass of `model`, by a plain forward hook."""
    seen = {}
    h = module.register_forward_hook(lambda m, i, o: seen.update(i=i[0].detach().clone(), o=o.detach().clone()))
    model(x)
    h.remove()
    return seen["i"], seen["o"]


def _exact(x: torch.Tensor) -> list[float]:
    return torch.quantile(x.flatten(), torch.tensor(QUANTILES)).tolist()


def test_quantiles_are_those_of_the_batch_norm_input_and_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        model[0].bias.uniform_(2, 6)  # raw pre-activations far from 0 and unit spread
        model[0].weight.mul_(4)
    x = torch.randn(200, 3)
    pre = Preactivations(model, batch_norm=True)
    model.train()
    with torch.no_grad():
        model(x)
    pre.remove()
    with torch.no_grad():  # the same forward again (training mode: batch statistics, as the first one)
        raw, out = _hooked(model[1], model, x)
    assert pre.names == ["1"]
    assert pre.raw[0] == pytest.approx(_exact(raw), rel=1e-4, abs=1e-5)
    assert pre.bn[0] == pytest.approx(_exact(out), rel=1e-4, abs=1e-5)
    q = dict(zip(QUANTILES, pre.bn[0]))
    assert abs(q[0.5]) < 0.15  # normalised: centred on 0 ...
    assert (q[0.95] - q[0.05]) / (2 * 1.645) == pytest.approx(1.0, abs=0.15)  # ... with a spread of about 1
    r = dict(zip(QUANTILES, pre.raw[0]))
    assert r[0.5] > 1.5  # the raw input was not
    pre2 = Preactivations(model, batch_norm=True)
    pre2.remove()
    with torch.no_grad():
        model(x)
    assert pre2.raw == []  # removed hooks record nothing


def test_without_batch_norm_the_hidden_layers_outputs_are_recorded_not_the_scores():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(),
                          nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(30, 16)
    pre = Preactivations(model, batch_norm=False)
    with torch.no_grad():
        model(x)
    pre.remove()
    assert pre.names == ["1", "4"] and pre.bn == []  # the conv and the hidden linear, not the output layer
    for name, q in zip(pre.names, pre.raw):
        _, out = _hooked(model[int(name)], model, x)
        assert q == pytest.approx(_exact(out.detach()), rel=1e-4, abs=1e-5)


def test_large_layers_are_sampled_close_to_exact_without_touching_the_runs_random_numbers():
    torch.manual_seed(0)
    x = torch.randn(4 * SAMPLED) * 3 + 1
    state = torch.random.get_rng_state()
    q = quantiles(x)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert q == quantiles(x)  # the same positions every epoch
    assert q == pytest.approx(_exact(x), abs=0.15)  # 5 % of the spread; the 99 % quantile's standard error ~0.045
    assert all(math.isnan(v) for v in quantiles(torch.tensor([1.0, float("nan")])))  # a diverged layer says so


def test_health_summary_adds_the_quantiles_per_epoch_and_keeps_its_keys():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = Health(model, opt, probe=torch.randn(64, 3) + 2)
    for epoch in (1, 2):
        model.train()
        opt.zero_grad()
        model(torch.randn(64, 3) + 2).sum().backward()
        opt.step()
        h.epoch_end(epoch, model, {})
    s = h.summary()
    h.close()
    assert {"threshold", "probe_samples", "epochs", "layers", "relu_layers", "grad_norm", "first_to_last_grad",
            "near_zero", "near_zero_all", "dead_relu", "weight_hist"} <= set(s)  # the keys readers know
    assert s["preact_quantiles"] == list(QUANTILES) and s["preact_batch_norm"] is True and s["preact_layers"] == ["1"]
    assert len(s["preact_raw"]["1"]) == len(s["preact_bn"]["1"]) == 2
    model.eval()  # the probe runs in eval mode: batch norm from its running statistics
    with torch.no_grad():
        raw, out = _hooked(model[1], model, h.probe)
    assert s["preact_raw"]["1"][-1] == pytest.approx(_exact(raw), rel=1e-4, abs=1e-5)
    assert s["preact_bn"]["1"][-1] == pytest.approx(_exact(out), rel=1e-4, abs=1e-5)
    # a checkpoint of a run recorded before the quantiles existed: those epochs read None
    old = h.state_dict()
    old["epochs"] = [{k: v for k, v in e.items() if not k.startswith("preact")} for e in old["epochs"]]
    old.pop("preact_names")
    h2 = Health(model, opt, probe=h.probe)
    h2.load_state_dict(old)
    h2.epoch_end(3, model, {})
    s2 = h2.summary()
    h2.close()
    assert s2["preact_bn"]["1"][:2] == [None, None] and len(s2["preact_bn"]["1"][2]) == len(QUANTILES)


@pytest.fixture
def figures(monkeypatch):
    import matplotlib.figure

    caught = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: caught.append(self))
    return caught


def test_bn_plot_draws_the_recorded_bands(figures, tmp_path):
    from dlseminar.viz.health import batch_norm

    qs = list(QUANTILES)
    raw = [[-3 - e, -2 - e, -1, 0.5 * e, 1, 2 + e, 3 + e] for e in range(3)]
    h = {"epochs": [1, 2, 3], "probe_samples": 64, "preact_quantiles": qs, "preact_batch_norm": True,
         "preact_layers": ["1"], "preact_raw": {"1": raw}, "preact_bn": {"1": [[-2, -1.6, -0.7, 0, 0.7, 1.6, 2]] * 3}}
    assert batch_norm(tmp_path / "bn.png", h)
    before, after = figures[0].axes
    assert "before batch norm" in before.get_title() and "after batch norm" in after.get_title()
    median = [ln for ln in before.lines if ln.get_label() == "median"][0]
    assert list(median.get_ydata()) == [0.0, 0.5, 1.0]
    outer = before.collections[0].get_paths()[0].vertices  # the 1-99 % band: its lowest and highest points
    assert outer[:, 1].min() == -5 and outer[:, 1].max() == 5
    assert not batch_norm(tmp_path / "x.png", {**h, "preact_layers": []})  # a perceptron has none
    figures.clear()
    assert batch_norm(tmp_path / "bn.png", {**h, "preact_batch_norm": False, "preact_bn": {}})
    assert len(figures[0].axes) == 1 and "no batch norm" in figures[0].axes[0].get_title()


def test_a_run_with_health_writes_bn_png(tmp_path):
    from dlseminar import run
    from dlseminar.config import resolve

    run_dir, s = run.train(resolve(CONFIGS / "xor_mlp.yaml", ["train.epochs=2", "data.n_samples=100",
                                                             "model.batch_norm=true", "train.health=true",
                                                             "logging.boundary_gif=false", f"out={tmp_path / 'r'}"]))
    assert "plots/bn.png" in s.plots and (run_dir / "plots" / "bn.png").stat().st_size > 10_000
    assert s.health["preact_layers"] == ["2"] and len(s.health["preact_bn"]["2"]) == 2
    _, off = run.train(resolve(CONFIGS / "xor_mlp.yaml", ["train.epochs=1", "data.n_samples=100", "train.health=true",
                                                         "logging.plots=false", f"out={tmp_path / 'off'}"]))
    assert not (tmp_path / "off" / "plots" / "bn.png").exists() and not off.plots
