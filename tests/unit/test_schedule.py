"""Unit tests for engine/optim.py: the registered optimizers and LRSchedule."""
from __future__ import annotations

import math

import pytest
import torch

from dlseminar import catalog, config
from dlseminar.engine.optim import LRSchedule, build_optimizer
from dlseminar.errors import ConfigError
from dlseminar.registry import OPTIMIZERS

catalog.load_all()
LR = 0.1


def make(*sets, spe=10, epochs=10, lr=LR):
    cfg = config.resolve(sets=[f"optim.lr={lr}", "optim.name=sgd", *sets])
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(cfg, model)
    return LRSchedule(opt, cfg, spe, epochs), opt


def run(sched, steps):
    """lr in effect for each of `steps` optimizer steps."""
    lrs = []
    for _ in range(steps):
        lrs.append(sched.lr)
        sched.step()
    return lrs


# --------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_and_steps(name):
    torch.manual_seed(0)
    cfg = config.resolve(sets=[f"optim.name={name}", "optim.lr=0.05", "optim.weight_decay=0.01"])
    model = torch.nn.Linear(3, 1)
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["weight_decay"] == 0.01
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    before = [p.detach().clone() for p in model.parameters()]
    loss0 = torch.nn.functional.mse_loss(model(x), y)
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.nn.functional.mse_loss(model(x), y) < loss0


def test_optimizer_options_reach_torch():
    model = torch.nn.Linear(2, 1)
    cfg = config.resolve(sets=["optim.name=adam", "optim.betas=[0.5, 0.6]", "optim.eps=1e-6"])
    g = build_optimizer(cfg, model).param_groups[0]
    assert tuple(g["betas"]) == (0.5, 0.6) and g["eps"] == 1e-6
    g = build_optimizer(config.resolve(sets=["optim.name=nesterov", "optim.momentum=0.8"]), model).param_groups[0]
    assert g["momentum"] == 0.8 and g["nesterov"] is True
    g = build_optimizer(config.resolve(sets=["optim.name=rmsprop", "optim.alpha=0.9"]), model).param_groups[0]
    assert g["alpha"] == 0.9
    g = build_optimizer(config.resolve(sets=["optim.name=sgd"]), model).param_groups[0]
    assert g["momentum"] == 0


def test_unknown_optimizer():
    with pytest.raises(ConfigError, match="did you mean 'adamw'"):
        build_optimizer(config.resolve(sets=["optim.name=adamww"]), torch.nn.Linear(1, 1))


# --------------------------------------------------------------------------- schedules


def test_none_is_constant_and_not_per_step():
    s, _ = make()
    assert not s.per_step
    assert run(s, 50) == [LR] * 50


def test_step_multiplies_by_gamma_at_epoch_boundaries():
    s, opt = make("sched.name=step", "sched.step_size=2", "sched.gamma=0.5", spe=5)
    assert s.per_step
    lrs = run(s, 40)  # 8 epochs of 5 steps
    for i, lr in enumerate(lrs):
        epoch = i // 5
        assert lr == pytest.approx(LR * 0.5 ** (epoch // 2)), i
    assert lrs[9] == pytest.approx(LR) and lrs[10] == pytest.approx(LR / 2)  # changes exactly at epoch 2
    assert opt.param_groups[0]["lr"] == s.lr


def test_cosine_decays_to_min_lr():
    s, _ = make("sched.name=cosine", "sched.min_lr=0.001", spe=4, epochs=5)
    lrs = run(s, 20)
    assert lrs[0] == pytest.approx(LR)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # monotone decay
    assert lrs[10] == pytest.approx(0.001 + (LR - 0.001) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s.lr == pytest.approx(0.001)  # after the last step: min_lr
    run(s, 5)  # training on past the planned end stays at min_lr
    assert s.lr == pytest.approx(0.001)


def test_warmup_ramps_linearly():
    s, _ = make("sched.warmup_epochs=1", spe=10)
    assert s.per_step
    lrs = run(s, 15)
    ramp = lrs[:10]
    diffs = [b - a for a, b in zip(ramp, ramp[1:])]
    assert all(d == pytest.approx(diffs[0]) for d in diffs) and diffs[0] > 0
    assert ramp[0] == pytest.approx(LR / 11) and ramp[-1] == pytest.approx(LR * 10 / 11)
    assert lrs[10:] == pytest.approx([LR] * 5)


def test_warmup_then_cosine():
    s, _ = make("sched.name=cosine", "sched.warmup_epochs=2", spe=5, epochs=10)
    lrs = run(s, 50)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert lrs[10] == pytest.approx(LR)  # the cosine starts at the peak after warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert s.lr == pytest.approx(0.0, abs=1e-12)


def test_onecycle_peaks_at_lr():
    s, _ = make("sched.name=onecycle", "sched.pct_start=0.3", spe=10, epochs=10)
    lrs = run(s, 101)
    peak = max(lrs)
    assert peak == pytest.approx(LR)
    assert lrs.index(peak) == 30  # at pct_start of the run
    assert lrs[0] == pytest.approx(LR / 25)
    assert all(a <= b for a, b in zip(lrs[:30], lrs[1:31]))
    assert all(a >= b for a, b in zip(lrs[30:], lrs[31:]))
    assert lrs[100] == pytest.approx(LR / 1e4)


def test_plateau_reduces_after_patience():
    s, _ = make("sched.name=plateau", "sched.patience=2", "sched.factor=0.5", "sched.min_lr=0.02")
    assert not s.per_step
    s.epoch_end(1.0, "min")
    s.epoch_end(0.9, "min")  # better
    s.epoch_end(0.95, "min")  # bad 1
    s.epoch_end(0.9, "min")  # bad 2 (equal is not better)
    assert s.lr == pytest.approx(LR)
    s.epoch_end(0.91, "min")  # bad 3 > patience: reduce
    assert s.lr == pytest.approx(LR / 2)
    for _ in range(2):
        s.epoch_end(0.92, "min")
    assert s.lr == pytest.approx(LR / 2)
    s.epoch_end(0.92, "min")
    assert s.lr == pytest.approx(LR / 4)
    for _ in range(9):
        s.epoch_end(1.0, "min")
    assert s.lr == pytest.approx(0.02)  # floored at min_lr
    s.epoch_end(float("nan"), "min")
    s.epoch_end(None, "min")
    assert s.lr == pytest.approx(0.02)


def test_plateau_max_mode_and_improvement_resets():
    s, _ = make("sched.name=plateau", "sched.patience=1", "sched.factor=0.1")
    for v in (0.5, 0.4, 0.6, 0.5, 0.7, 0.6):  # never two bad epochs in a row
        s.epoch_end(v, "max")
    assert s.lr == pytest.approx(LR)
    s.epoch_end(0.6, "max")
    assert s.lr == pytest.approx(LR * 0.1)


def test_epoch_end_is_a_no_op_for_other_schedules():
    s, _ = make("sched.name=step")
    for _ in range(20):
        s.epoch_end(1.0, "min")
    assert s.lr == pytest.approx(LR)


def test_base_lr_per_param_group():
    cfg = config.resolve(sets=["optim.lr=0.1", "optim.name=sgd", "sched.name=step", "sched.step_size=1",
                               "sched.gamma=0.5"])
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.02}])
    s = LRSchedule(opt, cfg, 1, 5)
    s.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.01])


@pytest.mark.parametrize(
    "sets",
    [
        ["sched.name=cosine", "sched.warmup_epochs=1.5", "sched.min_lr=0.01"],
        ["sched.name=onecycle"],
        ["sched.name=step", "sched.step_size=3"],
        ["sched.name=plateau", "sched.patience=1"],
    ],
)
def test_state_dict_round_trip_reproduces_lr(sets):
    s, _ = make(*sets, spe=7, epochs=6)
    values = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.86]
    for v in values[:5]:
        run(s, 7)
        s.epoch_end(v, "min")
    state = s.state_dict()
    assert all(isinstance(v, (int, float, type(None))) for v in state.values())  # weights_only-safe
    t, opt2 = make(*sets, spe=7, epochs=6)
    assert t.lr != s.lr  # a fresh schedule is somewhere else: the state matters
    t.load_state_dict(state)
    assert t.lr == s.lr and opt2.param_groups[0]["lr"] == s.lr
    # and both continue identically
    for v in values[5:]:
        a, b = run(s, 7), run(t, 7)
        assert a == b
        s.epoch_end(v, "min")
        t.epoch_end(v, "min")
        assert s.lr == t.lr


def test_plateau_state_round_trip_keeps_the_reduced_lr():
    s, _ = make("sched.name=plateau", "sched.patience=0", "sched.factor=0.5")
    s.epoch_end(1.0, "min")
    s.epoch_end(2.0, "min")
    assert s.lr == pytest.approx(LR / 2)
    t, _ = make("sched.name=plateau", "sched.patience=0", "sched.factor=0.5")
    t.load_state_dict(s.state_dict())
    assert t.lr == pytest.approx(LR / 2)
    t.epoch_end(1.5, "min")  # still worse than the stored best 1.0
    assert t.lr == pytest.approx(LR / 4)


def test_unknown_schedule():
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        make("sched.name=cosin")
