"""The seminar's worked numbers (SEED_LESSONS.md sections 3 and 4) through the real tasks and losses,
and the forms each task prepares for each loss."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from dlseminar import catalog, config
from dlseminar.data import DataInfo
from dlseminar.errors import ConfigError
from dlseminar.registry import LOSSES
from dlseminar.tasks import build_task
from dlseminar.tasks.classification.task import Classification
from dlseminar.tasks.regression.task import Regression

catalog.load_all()


def cls_task(loss="auto", classes=2, *sets):
    info = DataInfo("t", "classification", (2,), classes, [f"c{i}" for i in range(classes)])
    return build_task(config.resolve(sets=[f"loss.name={loss}", *sets]), info)


def reg_task(loss="auto", *sets):
    return build_task(config.resolve(sets=[f"loss.name={loss}", *sets]), DataInfo("t", "regression", (2,)))


# --------------------------------------------------------------------------- section 3: softmax


@pytest.mark.parametrize(
    "logits, rounded",
    [([5, 4, 2], [0.71, 0.26, 0.04]), ([4, 2, 8], [0.02, 0.00, 0.98]), ([4, 4, 1], [0.49, 0.49, 0.02])],
)
def test_seminar_softmax_table(logits, rounded):
    task = cls_task(classes=3)
    p = task.probs(torch.tensor([logits], dtype=torch.float32))
    assert p.shape == (1, 3)
    assert [round(v, 2) for v in p[0].tolist()] == rounded
    assert p.sum().item() == pytest.approx(1.0)


def test_seminar_softmax_table_batched_and_predict():
    task = cls_task(classes=3)
    out = torch.tensor([[5.0, 4, 2], [4, 2, 8], [4, 4, 1]])
    p = task.probs(out)
    assert torch.allclose(p.sum(1), torch.ones(3))
    assert task.labels(out).tolist() == [0, 2, 0]  # argmax (ties: the first)
    model = torch.nn.Identity()
    assert torch.equal(task.predict(model, out), p)


def test_probs_with_one_output_is_sigmoid():
    task = cls_task("bce", classes=2)
    p = task.probs(torch.tensor([[0.0], [math.log(0.83 / 0.17)]]))
    assert torch.allclose(p, torch.tensor([[0.5, 0.5], [0.17, 0.83]]), atol=1e-6)
    assert task.labels(torch.tensor([[-0.1], [0.1], [0.0]])).tolist() == [0, 1, 0]


# --------------------------------------------------------------------------- section 4: cross-entropy


@pytest.mark.parametrize("loss", ["nll", "ce"])
@pytest.mark.parametrize("output, expected", [([0.83, 0.17], 1.77), ([0.21, 0.79], 0.23)])
def test_seminar_cross_entropy(loss, output, expected):
    task = cls_task(loss, classes=2)
    assert task.num_outputs == 2
    # the model returns scores; log-probabilities are scores whose softmax is `output`
    scores = torch.log(torch.tensor([output]))
    h = task.loss(scores, torch.tensor([1]))  # label [0, 1]: class 1
    # the seminar truncates to 2 decimals: -log 0.79 = 0.2357 is printed as 0.23 (and -log 0.17 = 1.772 as 1.77)
    assert math.floor(h.item() * 100) / 100 == expected
    assert h.item() == pytest.approx(-math.log(output[1]), rel=1e-5)


@pytest.mark.parametrize("output, expected", [([0.83, 0.17], 1.77), ([0.21, 0.79], 0.23)])
def test_seminar_cross_entropy_with_one_sigmoid_output(output, expected):
    task = cls_task("bce", classes=2)
    assert task.num_outputs == 1
    z = torch.tensor([[math.log(output[1] / output[0])]])  # sigma(z) = output[1]
    h = task.loss(z, torch.tensor([1])).item()
    assert math.floor(h * 100) / 100 == expected  # truncated, as in the seminar
    assert h == pytest.approx(-math.log(output[1]), rel=1e-5)


def test_cross_entropy_is_mean_over_batch():
    task = cls_task("ce", classes=2)
    scores = torch.log(torch.tensor([[0.83, 0.17], [0.21, 0.79]]))
    h = task.loss(scores, torch.tensor([1, 1]))
    assert h.item() == pytest.approx((-math.log(0.17) - math.log(0.79)) / 2, rel=1e-5)


def test_label_smoothing_reaches_ce():
    scores = torch.log(torch.tensor([[0.83, 0.17]]))
    plain = cls_task("ce", 2).loss(scores, torch.tensor([1])).item()
    smooth = cls_task("ce", 2, "loss.label_smoothing=0.2").loss(scores, torch.tensor([1])).item()
    expected = 0.9 * -math.log(0.17) + 0.1 * -math.log(0.83)  # targets [0.1, 0.9]
    assert smooth == pytest.approx(expected, rel=1e-5) and smooth != pytest.approx(plain)


# --------------------------------------------------------------------------- section 4: regression losses


@pytest.mark.parametrize("loss, expected", [("mae", 1.5), ("mse", 2.25), ("auto", 2.25), ("huber", 1.0)])
def test_seminar_regression_losses(loss, expected):
    task = reg_task(loss)
    assert isinstance(task, Regression) and task.num_outputs == 1
    h = task.loss(torch.tensor([[23.5]]), torch.tensor([[25.0]]))
    assert h.item() == pytest.approx(expected)


def test_huber_delta_reaches_the_loss():
    h = reg_task("huber", "loss.huber_delta=2.0").loss(torch.tensor([[23.5]]), torch.tensor([[25.0]]))
    assert h.item() == pytest.approx(0.5 * 1.5**2)


def test_regression_metrics_are_exact_and_batch_independent():
    task = reg_task("mae")
    out = torch.tensor([[23.5], [10.0], [0.0], [4.0]])
    y = torch.tensor([[25.0], [12.0], [1.0], [4.0]])
    whole = task.new_metrics("cpu")
    whole.update(out, y, task.loss(out, y))
    parts = task.new_metrics("cpu")
    for i in (slice(0, 1), slice(1, 4)):
        parts.update(out[i], y[i], task.loss(out[i], y[i]))
    a, b = whole.compute(), parts.compute()
    for k in a:
        assert a[k] == pytest.approx(b[k])
    assert a["mae"] == pytest.approx((1.5 + 2 + 1 + 0) / 4)
    assert a["mse"] == pytest.approx((2.25 + 4 + 1 + 0) / 4)
    assert a["rmse"] == pytest.approx(math.sqrt(a["mse"]))
    assert a["loss"] == pytest.approx(a["mae"])
    ybar = y.mean().item()
    assert a["r2"] == pytest.approx(1 - a["mse"] * 4 / sum((v - ybar) ** 2 for v in y.flatten().tolist()))


def test_classification_metrics_accuracy_and_details():
    task = cls_task("ce", classes=3)
    out = torch.tensor([[5.0, 4, 2], [4, 2, 8], [4, 4, 1], [0, 9, 0]])
    y = torch.tensor([0, 2, 1, 1])
    m = task.new_metrics("cpu")
    m.update(out, y, task.loss(out, y))
    r = m.compute()
    assert r["acc"] == pytest.approx(3 / 4)
    assert r["loss"] == pytest.approx(task.loss(out, y).item())
    cm = m.matrix()
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]  # (true, predicted)
    header, rows = task.details(m)
    assert header[:4] == ["class", "support", "precision", "recall"]
    assert rows[1][:4] == ["c1", 2, 1.0, 0.5]
    assert rows[0][:4] == ["c0", 1, 0.5, 1.0]
    assert len(rows) == 3 and all(len(r) == len(header) for r in rows)


# --------------------------------------------------------------------------- task.prepare forms


def test_task_defaults_and_monitors():
    c, r = cls_task(), reg_task()
    assert c.loss_name == "ce" and r.loss_name == "mse"
    assert (c.monitor, c.mode) == ("val/acc", "max") and (r.monitor, r.mode) == ("val/loss", "min")
    assert c.output_kind == "scores" and r.output_kind == "values"
    assert set(Classification.losses()) == {e.name for e in LOSSES.entries() if e.meta["wants"] != "pixel_logits"}
    assert Regression.losses() == ["huber", "mae", "mse"]


def test_bce_two_classes_uses_one_output():
    task = cls_task("bce", classes=2)
    assert task.num_outputs == 1
    out = torch.tensor([[0.3], [-1.0]])
    pred, target = task.prepare(out, torch.tensor([1, 0]))
    assert torch.equal(pred, out)
    assert target.dtype == torch.float32 and torch.equal(target, torch.tensor([[1.0], [0.0]]))


def test_bce_many_classes_is_one_vs_rest():
    task = cls_task("bce", classes=3)
    assert task.num_outputs == 3
    out = torch.zeros(2, 3)
    pred, target = task.prepare(out, torch.tensor([2, 0]))
    assert torch.equal(target, torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    assert task.loss(out, torch.tensor([2, 0])).item() == pytest.approx(math.log(2))


def test_ce_and_nll_forms():
    out = torch.tensor([[1.0, 2.0, 3.0]])
    pred, target = cls_task("ce", 3).prepare(out, torch.tensor([1]))
    assert torch.equal(pred, out) and target.tolist() == [1]
    pred, _ = cls_task("nll", 3).prepare(out, torch.tensor([1]))
    assert torch.allclose(pred, torch.log_softmax(out, 1))


def test_mse_on_classification_compares_softmax_with_one_hot():
    task = cls_task("mse", classes=3)
    assert task.num_outputs == 3
    out = torch.tensor([[5.0, 4, 2], [4, 2, 8]])
    y = torch.tensor([0, 2])
    pred, target = task.prepare(out, y)
    assert torch.allclose(pred, torch.softmax(out, 1))
    assert torch.equal(target, torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
    expected = ((torch.softmax(out, 1) - target) ** 2).mean()
    assert task.loss(out, y).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_mse_on_two_classes_compares_probability_with_label(loss):
    task = cls_task(loss, classes=2)
    out = torch.tensor([[math.log(0.9 / 0.1)], [0.0]])  # p(class 1) = 0.9, 0.5
    y = torch.tensor([1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no broadcasting warning
        pred, target = task.prepare(out, y)
        assert pred.shape == target.shape
        h = task.loss(out, y).item()
    err = torch.tensor([0.1, 0.5])
    expected = (err**2).mean() if loss == "mse" else err.mean()
    assert h == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("loss", ["ce", "nll", "bce"])
def test_classification_losses_on_regression_raise(loss):
    with pytest.raises(ConfigError) as e:
        reg_task(loss)
    assert f"loss {loss!r} does not fit a regression task" in str(e.value)
    assert "choose from: huber, mae, mse" in str(e.value)


def test_unknown_loss_suggests():
    with pytest.raises(ConfigError, match="did you mean 'mse'"):
        reg_task("msee")


def test_training_and_eval_step():
    task = reg_task("mse")
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(23.5)
    x, y = torch.zeros(3, 2), torch.full((3, 1), 25.0)
    loss, n = task.training_step(lin, (x, y))
    assert n == 3 and loss.item() == pytest.approx(2.25)
    m = task.new_metrics("cpu")
    task.eval_step(lin, (x, y), m)
    assert m.compute()["mse"] == pytest.approx(2.25)
