"""plots/network.png (dlseminar/viz/network.py): each hidden unit's map is that unit's real activation over
the input plane, connections are coloured by the weight's sign, and only 2-D MLPs and perceptrons are drawn.
The figures are caught before they are written (savefig replaced) and their images read back."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from matplotlib.colors import to_rgb
from torch import nn

from conftest import CONFIGS
from dlseminar.assemble import build
from dlseminar.boundary import plane
from dlseminar.config import resolve
from dlseminar.viz.network import MAX_UNITS, NEG, POS, STEPS, edge_style, network, stages


@pytest.fixture(autouse=True)
def _own_random_numbers():
    """These tests seed torch's global generator; the tests after them find it as they would without them."""
    with torch.random.fork_rng():
        yield


@pytest.fixture
def figures(monkeypatch):
    import matplotlib.figure

    caught = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: caught.append(self))
    return caught


def _setup(*sets, path=CONFIGS / "xor_two_hidden.yaml"):
    return build(resolve(path, ["seed=2", "data.n_samples=200", *sets]))


def _axes(fig, name):
    return next(a for a in fig.axes if a.get_label() == name)


def _to_model(data, raw_points: torch.Tensor) -> torch.Tensor:
    """Points in original units -> the standardised inputs the model sees."""
    return ((raw_points - data.stats["mean"]) / data.stats["std"]).float()


@pytest.mark.parametrize("sets", [[], ["model.hidden=[5,3]", "model.activation=sigmoid", "model.batch_norm=true",
                                       "model.dropout=0.3"]])
def test_hidden_maps_are_the_units_activations_over_the_plane(figures, tmp_path, sets):
    s = _setup(*sets)
    model, data = s.model, s.data
    model.train()  # network() must switch to eval (dropout off, batch norm's running stats) and back
    with torch.no_grad():  # running statistics that are not the identity: eval mode must use them
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    assert network(tmp_path / "n.png", model, data, s.device, probs=s.task.probs)
    assert model.training
    fig = figures[0]
    _, xx, yy, _ = plane(data, STEPS)
    rows, cols = [0, 17, STEPS - 1], [3, 30, STEPS - 2]
    raw = torch.stack([torch.stack([xx[r, c], yy[r, c]]) for r in rows for c in cols])  # (9, 2) original units
    x = _to_model(data, raw)
    model.eval()
    with torch.no_grad():
        # the hidden activations straight from the model: the Sequential up to each hidden layer's end
        ends = [i for i, m in enumerate(model) if isinstance(m, (nn.Tanh, nn.Sigmoid))]
        layers = [model[: e + 1](x) for e in ends]
        p1 = torch.sigmoid(model(x))[:, 0] if s.task.num_outputs == 1 else torch.softmax(model(x), 1)[:, 1]
    assert len(layers) == len(s.cfg["model.hidden"])
    for k, h in enumerate(layers, start=1):
        for u in range(h.shape[1]):
            img = _axes(fig, f"hidden {k} unit {u}").images[0].get_array()
            got = torch.tensor([float(img[r, c]) for r in rows for c in cols])
            assert torch.allclose(got, h[:, u], atol=1e-5), (k, u)
    out = _axes(fig, "output 0").images[0].get_array() if s.task.num_outputs == 1 else \
        _axes(fig, "output 1").images[0].get_array()
    assert torch.allclose(torch.tensor([float(out[r, c]) for r in rows for c in cols]), p1, atol=1e-5)


def test_connections_are_coloured_by_sign_and_sized_by_magnitude(figures, tmp_path):
    pos, w_pos = edge_style(2.0, 4.0)
    neg, w_neg = edge_style(-2.0, 4.0)
    assert pos[:3] == pytest.approx(to_rgb(POS)) and neg[:3] == pytest.approx(to_rgb(NEG))
    assert w_pos == w_neg  # the width says |w|, the colour says the sign
    widths = [edge_style(w, 4.0)[1] for w in (0.0, 1.0, 2.0, 4.0, 8.0)]
    assert widths == sorted(widths) and widths[0] > 0 and widths[-1] == widths[-2]  # clipped at the largest
    assert edge_style(3.0, 4.0, signed=False)[0][:3] == pytest.approx(to_rgb("0.45"))  # maxout: grey

    # the drawn lines: one per weight, its colour the weight's sign
    s = _setup()
    with torch.no_grad():
        s.model[1].weight.copy_(torch.tensor([[1.0, -2.0], [-3.0, 4.0]]))
    assert network(tmp_path / "n.png", s.model, s.data, s.device, probs=s.task.probs)
    lines = figures[0].axes[0].lines  # the connections, on the background axes
    assert len(lines) == 2 * 2 + 2 * 1  # input -> hidden, hidden -> output
    assert all(ln.get_color()[:3] in (to_rgb(POS), to_rgb(NEG)) for ln in lines)
    widest = max(float(s.model[1].weight.detach().abs().max()), float(s.model[3].weight.detach().abs().max()))
    for w in (1.0, -2.0, -3.0, 4.0):
        colour, width = edge_style(w, float(widest))
        assert any(ln.get_linewidth() == pytest.approx(width) and ln.get_color() == pytest.approx(colour)
                   for ln in lines), w


def test_wide_layers_are_capped_and_perceptrons_and_maxout_are_drawn(figures, tmp_path):
    s = _setup("model.hidden=[20]", "model.activation=relu")
    assert network(tmp_path / "n.png", s.model, s.data, s.device, probs=s.task.probs)
    labels = [a.get_label() for a in figures[-1].axes]
    assert sum(lbl.startswith("hidden 1 unit") for lbl in labels) == MAX_UNITS
    assert f"+{20 - MAX_UNITS} more" in [t.get_text() for t in figures[-1].axes[0].texts]
    for sets in (["model.name=perceptron", "model.activation=auto", "model.hidden=[]"],
                 ["model.activation=maxout", "model.hidden=[3]"]):
        s = _setup(*sets)
        assert network(tmp_path / "n.png", s.model, s.data, s.device, probs=s.task.probs), sets
    assert [a.get_label() for a in figures[-2].axes if a.get_label().startswith(("hidden", "output"))] == ["output 0"]


def test_images_and_other_models_are_not_drawn(figures, tmp_path):
    from dlseminar.models import build_model

    cnn = build_model(resolve(sets=["model.name=cnn"]), (1, 8, 8), 10, "scores")
    xor = _setup()
    assert not network(tmp_path / "a.png", cnn, xor.data, "cpu")  # 2-D data, but not an MLP
    for shape in ((1, 8, 8), (64,)):  # images; tables of more than two features
        other = SimpleNamespace(info=SimpleNamespace(in_shape=shape), splits={"train": None})
        assert not network(tmp_path / "b.png", xor.model, other, "cpu")
    assert stages(cnn) is None and stages(nn.Sequential(nn.Linear(2, 2), nn.Unflatten(1, (1, 2)))) is None
    assert not figures and not list(tmp_path.iterdir())


def test_a_trained_run_writes_network_png(tmp_path):
    from dlseminar import run

    run_dir, s = run.train(resolve(CONFIGS / "xor_two_hidden.yaml",
                                   ["train.epochs=2", "data.n_samples=100", "logging.boundary_gif=false",
                                    f"out={tmp_path / 'r'}"]))
    assert "plots/network.png" in s.plots and (run_dir / "plots" / "network.png").stat().st_size > 10_000
