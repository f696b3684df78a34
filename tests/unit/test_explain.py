"""`dlsem explain`: every worked number of the deck (SEED_LESSONS.md) held, each recomputed here with
torch independently of the explain package, and the student's bad numbers refused in one line."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from dlseminar import explain
from dlseminar.errors import ConfigError


def flat(matrices):
    return [v for M in matrices for row in M for v in row]


def run(topic, **options):
    result = explain.run(topic, options)
    json.dumps(result, allow_nan=False)  # what --json prints: plain JSON, no NaN/Infinity
    return result


# ---------------------------------------------------------------- perceptron
def test_perceptron_slide_line_and_salmon_sample():
    r = run("perceptron")
    z = 1.00 + 1.75 * 0.05 - 1.75  # σ(x₁ + 1.75·x₂ − 1.75) at [1.00, 0.05]
    assert r["weights"] == {"w0": -1.75, "w": [1.0, 1.75]} and r["input"] == [1.0, 0.05]
    assert r["z"] == pytest.approx(-0.6625) and r["output"] == pytest.approx(torch.sigmoid(torch.tensor(z)).item())
    assert round(r["output"], 4) == 0.3402
    assert run("perceptron", activation="identity")["output"] == pytest.approx(-0.6625)  # the regression slide
    text = explain.render(r)
    assert "-0.6625" in text and "0.3402" in text and "0.83" in text  # where the loss slide's 0.83 comes from


def test_perceptron_student_numbers_on_the_line():
    assert run("perceptron", input="0, 1")["output"] == pytest.approx(0.5)  # 0 + 1.75 - 1.75 = 0
    r = run("perceptron", weights="0.5, -2, 3", input="1 1")
    assert r["z"] == pytest.approx(1.5) and r["output"] == pytest.approx(1 / (1 + math.exp(-1.5)))


# ---------------------------------------------------------------- softmax
def test_softmax_cat_dog_horse_table():
    r = run("softmax")
    assert r["classes"] == ["cat", "dog", "horse"]
    assert [row["rounded"] for row in r["rows"]] == [[0.71, 0.26, 0.04], [0.02, 0.0, 0.98], [0.49, 0.49, 0.02]]
    for row in r["rows"]:
        assert row["softmax"] == pytest.approx(torch.softmax(torch.tensor(row["logits"]), 0).tolist(), abs=1e-7)
    assert r["rows"][0]["exp"] == pytest.approx([math.exp(5), math.exp(4), math.exp(2)])
    text = explain.render(r)
    assert "0.71" in text and "0.26" in text and "0.04" in text and "148.4132" in text


def test_softmax_temperature_and_large_logits():
    sharp, flat = (run("softmax", logits="5,4,2", temperature=t)["rows"][0]["softmax"] for t in (0.5, 2.0))
    assert sharp == pytest.approx(torch.softmax(torch.tensor([10.0, 8, 4]), 0).tolist(), abs=1e-7)
    assert flat == pytest.approx(torch.softmax(torch.tensor([2.5, 2, 1]), 0).tolist(), abs=1e-7)
    assert max(sharp) > 0.7054 > max(flat)
    big = run("softmax", logits="1000, 999", classes="a,b")["rows"][0]  # e^1000 overflows: shifted by the max
    assert big["shift"] == 1000 and big["softmax"] == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.e)])


# ---------------------------------------------------------------- loss
def test_cross_entropy_slide_values():
    r = run("loss")
    h1, h2 = (c["value"] for c in r["cross_entropy"])
    label = torch.tensor([1])  # one-hot [0, 1]
    for p, h in (([0.83, 0.17], h1), ([0.21, 0.79], h2)):
        assert h == pytest.approx(F.nll_loss(torch.tensor([p], dtype=torch.float64).log(), label).item())
    assert round(h1, 2) == 1.77
    assert round(h2, 4) == 0.2357 and math.floor(h2 * 100) / 100 == 0.23  # the slide cuts, not rounds
    text = explain.render(r)
    assert "1.7720" in text and "0.2357" in text and "the slide: 0.23" in text and "0.24" in text


def test_mse_and_mae_slide_values():
    reg = run("loss")["regression"]
    p, y = torch.tensor([23.5]), torch.tensor([25.0])
    assert reg["mse"] == 2.25 == F.mse_loss(p, y).item()
    assert reg["mae"] == 1.5 == F.l1_loss(p, y).item()
    own = run("loss", prediction="23.5, 20", label="25, 21")  # numbers that are no distribution: regression
    assert own["losses"] == ["mse", "mae"] and own["regression"]["mse"] == pytest.approx(1.625)
    assert run("loss", prediction="0.7,0.2,0.1", label="0,0,1")["cross_entropy"][0]["value"] == pytest.approx(-math.log(0.1))


# ---------------------------------------------------------------- backprop
def torch_mlp_grads(weights, x, y):
    """The default 2-2-1 sigmoid MLP with binary cross-entropy, built from nn.Linear layers."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid(), torch.nn.Linear(2, 1), torch.nn.Sigmoid()).double()
    with torch.no_grad():
        for lin, W in zip((net[0], net[2]), weights):
            W = torch.tensor(W, dtype=torch.float64)
            lin.bias.copy_(W[0])
            lin.weight.copy_(W[1:].T)
    loss = F.binary_cross_entropy(net(torch.tensor([x], dtype=torch.float64)), torch.tensor([y], dtype=torch.float64))
    loss.backward()
    return loss.item(), [torch.cat([lin.bias.grad[None], lin.weight.grad.T]).tolist() for lin in (net[0], net[2])]


def test_backprop_chain_rule_matches_autograd_and_finite_differences():
    r = run("backprop")
    assert r["network"] == "2-2-1" and r["input"] == [1.0, 0.05]
    assert r["autograd"]["max_relative_error"] < 1e-6
    assert r["finite_difference"]["max_relative_error"] < 1e-6
    loss, grads = torch_mlp_grads(r["weights"], r["input"], r["label"])
    assert r["loss_value"] == pytest.approx(loss, rel=1e-12)
    assert flat(r["gradients"]) == pytest.approx(flat(grads), rel=1e-9, abs=1e-15)
    text = explain.render(r)
    assert "max relative error" in text and "∂L/∂ŷ · ∂ŷ/∂z2_1 · ∂z2_1/∂a1_1 · ∂a1_1/∂z1_1" in text


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam"])
def test_first_optimizer_step_equals_torch(name):
    r = run("backprop")
    params = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in r["weights"]]
    for p, g in zip(params, r["gradients"]):
        p.grad = torch.tensor(g, dtype=torch.float64)
    lr = r["lr"]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=lr), "momentum": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9),
           "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8),
           "adam": lambda: torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)}[name]()
    opt.step()
    step = r["optimizers"][name]
    assert flat(step["weights"]) == pytest.approx(flat(p.detach().tolist() for p in params), abs=1e-15)
    assert step["max_abs_diff_torch"] < 1e-12  # the hand formula gives torch's step
    g = flat(r["gradients"])
    size = {"sgd": [lr * abs(v) for v in g], "momentum": [lr * abs(v) for v in g],
            "rmsprop": [lr / math.sqrt(1 - 0.99)] * len(g), "adam": [lr] * len(g)}[name]
    assert [abs(d) for d in step["delta"]] == pytest.approx(size, rel=1e-3)  # ε shifts tiny gradients a little
    assert step["loss_after"] < r["loss_value"]


@pytest.mark.parametrize("options", [
    dict(activation="tanh"), dict(activation="relu", loss="mse", label="0.3"),
    dict(weights="0.1,-0.2,0.3; 0.4,0.3,-0.1; -0.5,0.6,0.2 | 0.05,0.1; 0.7,-0.3; -0.4,0.2; 0.3,0.5 | 0.1; 0.2; -0.6",
         input="0.5, -1", label="1", lr=0.5),
])
def test_backprop_student_networks(options):
    r = run("backprop", **options)
    assert r["autograd"]["max_relative_error"] < 1e-9
    assert r["finite_difference"]["max_relative_error"] < 1e-6


# ---------------------------------------------------------------- conv
def test_conv_slide_parameter_counts_and_input_size():
    r = run("conv")
    assert r["input"] == [1, 48, 48]
    convs = [lay for lay in r["layers"] if lay["layer"].startswith("conv")]
    assert [c["conv_params"] for c in convs] == [80, 1168]
    assert [c["dense_per_filter"] for c in convs] == [18_440, 73_744]
    for n, slide in zip((18_440, 73_744), (18_500, 73_700)):
        assert abs(n - slide) / slide < 0.005  # "about 18,500", "about 73,700"
    assert convs[0]["dense_per_neuron"] == 2_305  # "about 2,300 per neuron"
    with torch.device("meta"):  # the same counts from torch's layers
        assert sum(p.numel() for p in torch.nn.Conv2d(1, 8, 3).parameters()) == 80
        assert sum(p.numel() for p in torch.nn.Conv2d(8, 16, 3).parameters()) == 1168
        assert sum(p.numel() for p in torch.nn.Linear(8 * 24 * 24, 16).parameters()) == 73_744
    assert [lay["receptive_field"] for lay in r["layers"]] == [3, 4, 8, 10]
    text = explain.render(r)
    assert "1x48x48" in text and "18,440" in text and "about 18,500" in text and "73,744" in text


def test_conv_student_stack_matches_torch_shapes():
    r = run("conv", input="3x32x32", filters="16,32", kernels="3,5", strides="1,2", pool=1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 1, 1), torch.nn.Conv2d(16, 32, 5, 2, 2))
    assert list(net(torch.zeros(1, 3, 32, 32)).shape[1:]) == r["layers"][-1]["out"] == [32, 16, 16]
    assert [lay["conv_params"] for lay in r["layers"]] == [sum(p.numel() for p in m.parameters()) for m in net]
    assert r["receptive_field"] == 1 + 2 + 4  # 3x3, then 5x5 at jump 1


# ---------------------------------------------------------------- pool, image
def test_pool_max_average_and_unpool_with_switches():
    r = run("pool")
    assert r["max"] == [[6, 8], [3, 4]] and r["average"] == [[3.25, 5.25], [2.0, 2.0]]
    assert r["switches"] == [[[1, 1], [1, 3]], [[2, 0], [3, 3]]]
    assert r["unpooled"] == [[0, 0, 0, 0], [0, 6, 0, 8], [3, 0, 0, 0], [0, 0, 0, 4]]
    odd = run("pool", input="1,2,3; 4,9,6; 7,8,5")
    assert odd["max"] == [[9]] and odd["dropped"] == [1, 1] and odd["unpooled"][1][1] == 9


def test_image_is_the_digit_grid():
    from sklearn.datasets import load_digits

    d = load_digits()
    for index in (0, 7):
        r = run("image", index=index)
        assert r["label"] == str(d.target[index]) and r["shape"] == [1, 8, 8]
        assert r["pixels"] == (d.images[index] * 255 / 16).round().astype(int).tolist()
    assert "207" in explain.render(run("image"))


# ---------------------------------------------------------------- activations
def test_activations_plot_and_saturation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("activations")
    assert (tmp_path / "explain_activations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sat = {f["name"]: f["saturates"] for f in r["functions"]}
    assert sat["sigmoid"] == [[-5.0, -2.89], [2.89, 5.0]] and sat["tanh"] == [[-5.0, -2.18], [2.18, 5.0]]
    assert sat["ReLU"] == [[-5.0, 0.0]] and sat["ELU"][0][0] == -5.0 and sat["ELU"][0][1] == pytest.approx(-3.0, abs=0.02)
    assert sat["leaky ReLU"] == [] and sat["maxout"] == []
    run("activations")  # its own default file: a rerun rewrites it
    (tmp_path / "mine.png").write_bytes(b"not ours")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        run("activations", out="mine.png")
    assert (tmp_path / "mine.png").read_bytes() == b"not ours"
    run("activations", out="mine.png", overwrite=True)
    assert (tmp_path / "mine.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- every topic, bad input
@pytest.mark.parametrize("topic", ["perceptron", "softmax", "loss", "backprop", "conv", "pool", "image"])
def test_every_topic_renders_a_result_line(topic):
    text = explain.render(run(topic))
    assert text.startswith(topic) and "result:" in text


@pytest.mark.parametrize("topic, options, message", [
    ("sofmax", {}, "unknown topic 'sofmax'.*did you mean 'softmax'"),
    ("loss", {"temperature": 2}, "--temperature does not apply to `dlsem explain loss`"),
    ("perceptron", {"weights": "1,2"}, "3 numbers for 2 inputs"),
    ("perceptron", {"input": "1, abc"}, "'abc' is not a number"),
    ("perceptron", {"input": "1,,2"}, "empty item"),
    ("perceptron", {"weights": "1e999,1,2"}, "not a finite number"),
    ("perceptron", {"weights": "1e308,1e308,1e308"}, "z is not a finite number"),
    ("softmax", {"logits": "1"}, "at least two classes"),
    ("softmax", {"logits": "1,2; 3"}, "same number of values"),
    ("softmax", {"temperature": 0}, "--temperature must be > 0"),
    ("softmax", {"temperature": float("nan")}, "not a finite number"),
    ("softmax", {"classes": "a,b"}, "--classes needs 3"),
    ("loss", {"prediction": "0.5,0.6", "label": "0,1", "loss": "ce"}, "sum to 1"),
    ("loss", {"prediction": "1,0", "label": "0,1"}, "infinite"),
    ("loss", {"prediction": "0.3"}, "give both --prediction and --label"),
    ("loss", {"loss": "hinge"}, "--loss must be one of ce, mse, mae"),
    ("loss", {"prediction": "1,2", "label": "1,2,3", "loss": "mse"}, "--label needs one row of 2"),
    ("backprop", {"weights": "1,2; 3,4"}, "needs 3 rows"),
    ("backprop", {"lr": -1}, "--lr must be > 0"),
    ("backprop", {"label": "2"}, "must be in \\[0, 1\\]"),
    ("backprop", {"label": "1,0"}, "--label needs 1 value"),
    ("backprop", {"activation": "softplus"}, "sigmoid, tanh, relu"),
    ("backprop", {"weights": "1000; 1000; 1000"}, "saturates"),
    ("conv", {"input": "3x"}, "empty item"),
    ("conv", {"input": "0x4x4"}, "between 1 and"),
    ("conv", {"filters": "8,16", "kernels": "3,3,3"}, "one per layer"),
    ("conv", {"input": "1x2x2", "kernels": "5"}, "does not fit"),
    ("pool", {"input": "1,2; 3"}, "same number of values"),
    ("pool", {"input": "1,2; 3,4", "pool": 3}, "smaller than the 3x3"),
    ("pool", {"pool": 0}, "--pool must be between 1"),
    ("image", {"index": 1797}, "--index must be between 0 and 1796"),
    ("image", {"index": 1.5}, "not a whole number"),
    ("activations", {"out": "plot.txt"}, "ending in .png"),
])
def test_bad_input_is_one_config_error(topic, options, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        explain.run(topic, options)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_explain_when_registered(dlsem):
    """The command line (once cli.py has `explain`): the slide's number, --json, one error line."""
    from dlseminar.cli import app

    if "explain" not in {c.name or c.callback.__name__ for c in app.registered_commands}:
        pytest.skip("dlsem explain is not registered in cli.py yet")
    r = dlsem("explain", "loss", "--json")
    assert r.rc == 0 and round(json.loads(r.out)["cross_entropy"][0]["value"], 2) == 1.77
    r = dlsem("explain", "softmax", "--temperature", "0")
    assert r.rc == 2 and r.err.strip() == "error: --temperature must be > 0 (got 0.0)" and r.out == ""
