"""Unit tests for dlseminar.models: the registered architectures and the activation zoo."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dlseminar import catalog, config
from dlseminar.errors import ConfigError
from dlseminar.models import build_model
from dlseminar.models.layers import Maxout, activation, init_weights
from dlseminar.models.perceptron import Perceptron
from dlseminar.registry import MODELS

catalog.load_all()
# models that map a tensor batch to a tensor; detectors (box lists) are tested in test_detection.py
PLAIN = [n for n in MODELS.names() if "detections" not in MODELS.get(n).meta.get("outputs", ())]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "identity"]


def model(*sets, in_shape=(2,), num_outputs=3, output_kind="scores"):
    return build_model(config.resolve(sets=list(sets)), in_shape, num_outputs, output_kind)


def forward_backward(m, in_shape, num_outputs, batch=4, dense=False):
    """dense: a segmentation model, one score per output and pixel (B, num_outputs, H, W)."""
    torch.manual_seed(0)
    size = tuple(in_shape[1:]) if dense else ()
    x = torch.randn(batch, *in_shape)
    m.train()
    out = m(x)
    heads = list(out) if isinstance(out, (tuple, list)) else [out]  # models with auxiliary heads
    for h in heads:
        assert h.shape == (batch, num_outputs, *size)
        assert torch.isfinite(h).all()
    # against a target of ones: a model whose start is all zeros (the classifying perceptron) gets gradients too
    sum((h - 1).square().mean() for h in heads).backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    # sweep tables count near-zero weights from a checkpoint's tensors of 2+ dimensions, without building
    # the model: that set must be the weights the penalty acts on (no frozen weight, no 2-D buffer)
    assert {k for k, t in m.state_dict().items() if t.ndim > 1} == \
        {n for n, p in m.named_parameters() if p.requires_grad and p.ndim > 1}
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    m.eval()
    with torch.no_grad():
        assert m(x[:2]).shape == (2, num_outputs, *size)  # eval mode: the main output only
    return heads[0]


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("in_shape", [(2,), (1, 8, 8)])
@pytest.mark.parametrize("kind, outputs", [("scores", 3), ("scores", 1), ("values", 1), ("values", 2)])
def test_every_model_forward_backward(name, in_shape, kind, outputs):
    sets = [f"model.name={name}"] + (["model.hidden=[5]"] if name == "mlp" else [])
    try:
        m = model(*sets, in_shape=in_shape, num_outputs=outputs, output_kind=kind)
    except ConfigError as e:
        # an image model may refuse tabular input (or the reverse) with a user-facing message,
        # but the tabular models take anything, and every model takes at least one of the two shapes
        assert name not in ("mlp", "perceptron"), e
        other = (2,) if in_shape != (2,) else (1, 8, 8)
        model(*sets, in_shape=other, num_outputs=outputs, output_kind=kind)
        return
    assert isinstance(m, nn.Module)
    forward_backward(m, in_shape, outputs, dense=MODELS.get(name).meta.get("dense", False))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_mlp_activation_works(act):
    m = model("model.name=mlp", f"model.activation={act}", "model.hidden=[6, 4]")
    forward_backward(m, (2,), 3)
    if act == "maxout":
        assert sum(isinstance(l, Maxout) for l in m.modules()) == 2
        assert not any(isinstance(l, nn.ReLU) for l in m.modules())
    else:
        expected = type(activation(act))
        assert sum(isinstance(l, expected) for l in m) == 2  # one per hidden layer


def test_mlp_auto_activation_is_relu_and_softmax_rejected():
    m = model("model.name=mlp", "model.hidden=[4, 4]")
    assert sum(isinstance(l, nn.ReLU) for l in m) == 2
    with pytest.raises(ConfigError, match="output activation"):
        model("model.name=mlp", "model.activation=softmax")


def test_mlp_layer_sizes():
    m = model("model.name=mlp", "model.hidden=[16, 8]", in_shape=(1, 8, 8), num_outputs=10)
    linears = [l for l in m if isinstance(l, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(64, 16), (16, 8), (8, 10)]
    assert isinstance(m[0], nn.Flatten)
    m = model("model.name=mlp", "model.hidden=[]", num_outputs=2)  # no hidden layer: a linear model
    assert [(l.in_features, l.out_features) for l in m if isinstance(l, nn.Linear)] == [(2, 2)]


def test_leaky_relu_default_slope_is_one_tenth():
    m = model("model.name=mlp", "model.activation=leaky_relu")
    leaky = [l for l in m if isinstance(l, nn.LeakyReLU)]
    assert len(leaky) == 1
    assert leaky[0].negative_slope == pytest.approx(0.1)
    x = torch.tensor([-2.0, -1.0, 0.0, 3.0])
    assert torch.allclose(leaky[0](x), torch.tensor([-0.2, -0.1, 0.0, 3.0]))
    m = model("model.name=mlp", "model.activation=leaky_relu", "model.leaky_slope=0.3")
    assert torch.allclose([l for l in m if isinstance(l, nn.LeakyReLU)][0](x), torch.tensor([-0.6, -0.3, 0.0, 3.0]))


def test_elu_alpha():
    m = model("model.name=mlp", "model.activation=elu", "model.elu_alpha=2.0")
    elu = [l for l in m if isinstance(l, nn.ELU)][0]
    x = torch.tensor([-1.0, 2.0])
    assert torch.allclose(elu(x), torch.tensor([2.0 * (torch.exp(torch.tensor(-1.0)) - 1), 2.0]))


def test_activation_functions_numerically():
    x = torch.tensor([-2.0, 0.0, 1.5])
    assert torch.allclose(activation("sigmoid")(x), 1 / (1 + torch.exp(-x)))
    assert torch.allclose(activation("tanh")(x), torch.tanh(x))
    assert torch.equal(activation("relu")(x), torch.tensor([0.0, 0.0, 1.5]))
    assert torch.equal(activation("identity")(x), x)
    with pytest.raises(ConfigError):
        activation("maxout")


def test_maxout_is_max_of_its_pieces():
    torch.manual_seed(1)
    mo = Maxout(3, 4, k=3)
    x = torch.randn(5, 3)
    pieces = [x @ mo.linear.weight[j::3].T + mo.linear.bias[j::3] for j in range(3)]  # unit u, piece j at u*k+j
    expect = torch.stack(pieces, -1).amax(-1)
    assert torch.allclose(mo(x), expect, atol=1e-6)
    # and explicitly by unit
    z = mo.linear(x)
    for u in range(4):
        assert torch.allclose(mo(x)[:, u], z[:, u * 3:(u + 1) * 3].max(1).values)


def test_maxout_k_reaches_the_layer():
    m = model("model.name=mlp", "model.activation=maxout", "model.maxout_k=4", "model.hidden=[5]")
    mo = [l for l in m.modules() if isinstance(l, Maxout)][0]
    assert mo.k == 4 and mo.linear.out_features == 20


def test_batch_norm_and_dropout_appear_when_asked():
    plain = model("model.name=mlp", "model.hidden=[4, 4]")
    assert not any(isinstance(l, (nn.BatchNorm1d, nn.Dropout)) for l in plain.modules())
    m = model("model.name=mlp", "model.hidden=[4, 4]", "model.batch_norm=true", "model.dropout=0.3")
    bns = [l for l in m if isinstance(l, nn.BatchNorm1d)]
    drops = [l for l in m if isinstance(l, nn.Dropout)]
    assert len(bns) == 2 and len(drops) == 2
    assert all(d.p == pytest.approx(0.3) for d in drops)
    kinds = [type(l).__name__ for l in m]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU",
                     "Dropout", "Linear"]
    forward_backward(m, (2,), 3)
    mo = model("model.name=mlp", "model.activation=maxout", "model.batch_norm=true", "model.dropout=0.2")
    assert [type(l).__name__ for l in mo] == ["Flatten", "Maxout", "BatchNorm1d", "Dropout", "Linear"]


def test_dropout_only_in_training():
    m = model("model.name=mlp", "model.hidden=[64]", "model.dropout=0.5")
    x = torch.randn(8, 2)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    assert not torch.equal(a, m(x))


@pytest.mark.parametrize("name", PLAIN)
def test_init_zeros_zeroes_weights(name):
    sets = [f"model.name={name}", "model.init=zeros"]
    try:
        m = model(*sets, in_shape=(2,))
    except ConfigError:  # an image model
        m = model(*sets, in_shape=(1, 8, 8))
    layers = [l for l in m.modules() if isinstance(l, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    assert layers
    for l in layers:
        assert torch.count_nonzero(l.weight) == 0
        assert l.bias is None or torch.count_nonzero(l.bias) == 0


@pytest.mark.parametrize("scheme", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "normal"])
def test_other_inits_zero_biases_but_not_weights(scheme):
    m = model("model.name=mlp", f"model.init={scheme}", "model.hidden=[8]")
    for l in (l for l in m if isinstance(l, nn.Linear)):
        assert torch.count_nonzero(l.bias) == 0 and torch.count_nonzero(l.weight) > 0
    if scheme == "normal":
        w = m[1].weight
        assert w.std().item() < 0.05


def test_init_default_keeps_pytorch_init():
    torch.manual_seed(3)
    a = model("model.name=mlp", "model.hidden=[8]")
    torch.manual_seed(3)
    b = model("model.name=mlp", "model.hidden=[8]", "model.init=default")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.count_nonzero(a[1].bias) > 0


def test_perceptron_parameter_count():
    m = model("model.name=perceptron", num_outputs=1)
    assert sum(p.numel() for p in m.parameters()) == 3  # w0, w1, w2
    m = model("model.name=perceptron", in_shape=(4,), num_outputs=3)
    assert sum(p.numel() for p in m.parameters()) == 15


def test_perceptron_computes_the_lesson_formula():
    m = model("model.name=perceptron", "model.activation=sigmoid", num_outputs=1, output_kind="values")
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[1.0, 1.75]]))
        m.linear.bias.fill_(-1.75)
    x = torch.tensor([[1.0, 0.05], [0.0, 1.0]])
    assert torch.allclose(m(x)[:, 0], torch.sigmoid(x[:, 0] + 1.75 * x[:, 1] - 1.75))
    # classification: the perceptron returns w0 + x.w; the task applies sigmoid/softmax
    c = model("model.name=perceptron", num_outputs=1, output_kind="scores")
    assert isinstance(c.act, nn.Identity)
    r = model("model.name=perceptron", num_outputs=1, output_kind="values")
    assert isinstance(r.act, nn.Identity)


def test_perceptron_explain_undoes_standardisation():
    p = Perceptron(2, 1)
    with torch.no_grad():
        p.linear.weight.copy_(torch.tensor([[2.0, -1.0]]))
        p.linear.bias.fill_(0.5)
    mean, std = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])
    w = p.explain(mean, std)["weights"]
    x = torch.tensor([3.0, -1.0])
    expected = p.linear(((x - mean) / std)[None])[0, 0].item()
    assert w["w0"] + sum(a * b for a, b in zip(w["w"], x.tolist())) == pytest.approx(expected, abs=1e-5)
    assert p.explain()["weights"] == {"w0": 0.5, "w": [2.0, -1.0]}


@pytest.mark.parametrize("act, outputs", [("relu", 1), ("relu", 3), ("softmax", 1), ("sigmoid", 3), ("maxout", 1)])
def test_perceptron_bad_activation_for_classification(act, outputs):
    with pytest.raises(ConfigError, match="does not fit a perceptron"):
        model("model.name=perceptron", f"model.activation={act}", num_outputs=outputs, output_kind="scores")


@pytest.mark.parametrize("act, outputs", [("sigmoid", 1), ("softmax", 3), ("auto", 1), ("auto", 4)])
def test_perceptron_matching_link_is_accepted(act, outputs):
    m = model("model.name=perceptron", f"model.activation={act}", num_outputs=outputs, output_kind="scores")
    assert isinstance(m.act, nn.Identity)


def test_perceptron_regression_activations():
    with pytest.raises(ConfigError, match="only fits classification"):
        model("model.name=perceptron", "model.activation=softmax", num_outputs=1, output_kind="values")
    with pytest.raises(ConfigError, match="needs hidden units"):
        model("model.name=perceptron", "model.activation=maxout", num_outputs=1, output_kind="values")
    m = model("model.name=perceptron", "model.activation=tanh", num_outputs=1, output_kind="values")
    assert isinstance(m.act, nn.Tanh)


def test_init_weights_handles_conv():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 2))
    init_weights(m, "zeros")
    assert all(torch.count_nonzero(p) == 0 for p in m.parameters())


def test_ignored_model_key_is_noted(capsys):
    model("model.name=perceptron", "model.hidden=[4]", num_outputs=1)
    assert "model.hidden is ignored by 'perceptron'" in capsys.readouterr().err
