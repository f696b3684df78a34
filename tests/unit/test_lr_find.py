"""dlsem lr-find: the range test's schedule, stop rule, suggestion, outputs, and that it leaves no trace."""
from __future__ import annotations

import math

import pytest
import torch
import yaml

from conftest import CONFIGS
from dlseminar import assemble, lr_find
from dlseminar.config import resolve
from dlseminar.engine.optim import build_optimizer


def test_range_test_restores_weights_optimizer_grads_mode_and_rng():
    cfg = resolve(CONFIGS / "moons_mlp_dropout.yaml", ["data.n_samples=200", "loss.l1=0.001"])  # dropout draws numbers
    setup = assemble.build(cfg)
    model, task = setup.model, setup.task
    opt = build_optimizer(cfg, model)
    loader = setup.loader("train", train=True)
    loss, _ = task.training_step(model, next(iter(loader)))  # an optimizer with state (Adam moments) and gradients
    loss.backward()
    opt.step()
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {i: {k: v.clone() for k, v in st.items()} for i, st in opt.state_dict()["state"].items()}
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()

    r = lr_find.range_test(model, task, opt, loader, start=1e-5, end=10, steps=60, penalty=lr_find._penalty(cfg, model))
    assert len(r.lrs) >= 10 and r.stop_reason
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    state = opt.state_dict()
    assert all(torch.equal(v, moments[i][k]) for i, st in state["state"].items() for k, v in st.items())
    assert state["param_groups"][0]["lr"] == cfg["optim.lr"]
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


def test_schedule_is_exponential_and_stops_on_divergence():
    r = lr_find.find(resolve(CONFIGS / "plane_regression.yaml"), start=1e-4, end=1e3, steps=100)
    ratios = [b / a for a, b in zip(r.lrs, r.lrs[1:])]
    assert r.lrs[0] == pytest.approx(1e-4) and max(ratios) == pytest.approx(min(ratios))
    assert ratios[0] == pytest.approx(1e7 ** (1 / 99))
    assert len(r.lrs) < 100 and ("diverging" in r.stop_reason or "not finite" in r.stop_reason), r.stop_reason
    i = r.minimum()
    finite = [v for v in r.smoothed if math.isfinite(v)]
    assert r.smoothed[i] == min(finite)
    assert finite[-1] > 4 * min(finite) or not math.isfinite(r.losses[-1])
    assert r.suggestion() == pytest.approx(r.lrs[i] / 10)  # the documented rule: min/10
    assert r.steepest() is not None and r.steepest() <= r.lrs[i]
    assert 1e-3 < r.suggestion() < 1.0  # plane regression trains with SGD at 0.05


def test_lr_find_cli_writes_plot_csv_and_a_recipe(dlsem, tmp_path):
    r = dlsem("lr-find", CONFIGS / "xor_mlp.yaml", "--steps", "80", "--end", "100", "--write", "xor_found.yaml",
            "--out", "lf", "--set", "train.batch_size=32")
    assert r.rc == 0, r
    assert (tmp_path / "lf" / "lr_find.png").stat().st_size > 10_000
    rows = (tmp_path / "lf" / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "step,lr,loss,smoothed" and 10 < len(rows) <= 81
    line = next(ln for ln in r.out.splitlines() if ln.startswith("suggested lr:"))
    suggested = float(line.split()[2])
    text = (tmp_path / "xor_found.yaml").read_text()
    assert text.startswith("# ") and "Lesson 2" in text  # says where the lr came from; keeps the recipe's header
    new = resolve(tmp_path / "xor_found.yaml")
    assert new["optim.lr"] == pytest.approx(suggested, rel=1e-2)
    old = resolve(CONFIGS / "xor_mlp.yaml", ["train.batch_size=32"])
    for key in ("model.hidden", "model.activation", "data.name", "loss.name", "optim.name", "train.epochs",
                "train.batch_size", "early_stop.monitor"):
        assert new[key] == old[key], key
    assert yaml.safe_load(text)["optim"]["lr"] == new["optim.lr"]


@pytest.mark.parametrize("args,words", [
    (["--start", "0"], "--start must be > 0"),
    (["--start", "1", "--end", "0.1"], "below --end"),
    (["--steps", "3"], "--steps must be at least 10"),
    (["--set", "optim.lrr=1"], "did you mean 'optim.lr'"),
    (["--write", str(CONFIGS / "xor_mlp.yaml")], "is the config being tested"),
])
def test_lr_find_bad_arguments_are_one_error_line(dlsem, args, words):
    r = dlsem("lr-find", CONFIGS / "xor_mlp.yaml", *(["--steps", "20"] if "--steps" not in args else []), *args)
    assert r.rc == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r
