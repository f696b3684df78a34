"""dlsem surface: the exact two-weight map, the recorded paths, the Li et al. directions, the verdicts, bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlseminar import surface
from dlseminar.config import resolve
from dlseminar.errors import ConfigError

# a perceptron with one input and a bias on y = 1.75 x - 1.75 + noise, x in 0..4 not standardised: an
# elongated valley (curvatures about 12 and 0.4), so full-batch gradient descent crawls along the valley
# floor at a tiny lr, converges below lr 0.08, zigzags across the valley up to about 0.16, and diverges above
LINE = ["model.name=perceptron", "model.activation=identity", "data.name=csv", "data.standardize=false",
        "loss.name=mse", "optim.name=sgd", "optim.lr=0.05", "train.batch_size=full", "train.epochs=40",
        "early_stop.patience=0", "name=line"]


@pytest.fixture
def line(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 4, 200)
    y = 1.75 * x - 1.75 + rng.normal(0, 0.3, 200)
    path = tmp_path / "line.csv"
    path.write_text("x,y\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(x, y)))
    return lambda *sets: resolve(None, [*LINE, f"data.path={path}", *sets])


def test_exact_surface_is_the_loss_computed_directly(line, tmp_path):
    from dlseminar.assemble import build

    cfg = line()
    r = surface.run(cfg, out=str(tmp_path / "s"), resolution=9)
    assert r["mode"] == "exact" and r["x"]["name"].startswith("w1") and r["y"]["name"].startswith("w0")
    X, y = build(cfg).data.splits["train"]
    assert r["samples"] == len(y) == 120  # the whole training split (60 %)
    for i, j in [(0, 0), (4, 4), (8, 2), (3, 7)]:
        w1, w0 = r["x"]["values"][j], r["y"]["values"][i]
        direct = float(((X[:, 0].double() * w1 + w0 - y.double().flatten()) ** 2).mean())
        assert r["loss"][i][j] == pytest.approx(direct, rel=1e-5)
    saved = json.loads((tmp_path / "s" / "surface.json").read_text())
    assert saved["loss"] == r["loss"] and len(saved["loss"]) == 9 and len(saved["loss"][0]) == 9
    assert (tmp_path / "s" / "surface.png").stat().st_size > 20_000


def test_path_starts_at_the_initial_weights_and_ends_where_dlsem_train_ends(line, tmp_path):
    from dlseminar.assemble import build
    from dlseminar.run import train

    cfg = line("early_stop.restore_best=false", "logging.plots=false")
    model = build(cfg).model
    r = surface.run(cfg, out=str(tmp_path / "s"), resolution=5)
    (path,) = r["paths"]
    assert path["points"][0] == pytest.approx([float(model.linear.weight.detach()), float(model.linear.bias.detach())])
    assert path["steps"] == 40 and len(path["points"]) == 41  # full batch: one step an epoch, every step kept
    run_dir, _ = train(cfg.replace(out=str(tmp_path / "run")))
    trained = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    end = [float(trained["linear.weight"]), float(trained["linear.bias"])]
    assert path["points"][-1] == pytest.approx(end, abs=1e-5)
    assert path["final_loss"] < path["initial_loss"] / 10


def test_learning_rates_converge_oscillate_and_diverge_on_one_map(line, tmp_path):
    r = surface.run(line("train.epochs=200"), ["optim.lr=0.001,0.05,0.14,0.3"], out=str(tmp_path / "s"), resolution=5)
    assert [p["status"] for p in r["paths"]] == ["still falling", "converged", "oscillating", "diverged"]
    assert [p["label"] for p in r["paths"]] == ["lr=0.001", "lr=0.05", "lr=0.14", "lr=0.3"]
    diverged = r["paths"][3]
    assert diverged["steps"] < 200  # stopped once its loss passed DIVERGE x the first
    x0, x1 = r["x"]["values"][0], r["x"]["values"][-1]
    assert not all(x0 <= p[0] <= x1 for p in diverged["points"])  # it leaves the map
    assert len({tuple(p["points"][0]) for p in r["paths"]}) == 1


def test_fixed_bias_leaves_the_plane_two_weights(tmp_path):
    cfg = resolve(None, ["model.name=perceptron", "data.name=plane", "data.n_samples=100", "train.epochs=2"])
    r = surface.run(cfg, out=str(tmp_path / "s"), resolution=5, fix=["linear.bias=0"])
    assert r["mode"] == "exact" and [r["x"]["name"], r["y"]["name"]] == ["w1 (the weight of x1)", "w2 (the weight of x2)"]


def test_network_paths_share_their_start_on_the_pca_plane(tmp_path):
    cfg = resolve(None, ["data.name=moons", "data.n_samples=200", "model.hidden=[8]", "train.epochs=3",
                         "optim.lr=0.05"])
    r = surface.run(cfg, ["optim.name=sgd,adam"], out=str(tmp_path / "s"), resolution=5)
    assert r["mode"] == "pca" and r["x"]["name"].startswith("PC1")
    starts = [p["points"][0] for p in r["paths"]]
    assert starts[0] == pytest.approx(starts[1], abs=1e-6)
    best = min(r["paths"], key=lambda p: p["final_loss"])
    assert best["points"][-1] == pytest.approx([0, 0], abs=1e-5)  # the slice is centred on its end
    assert [len(row) for row in r["loss"]] == [5] * 5 and all(v is not None for row in r["loss"] for v in row)


def test_filter_normalised_direction_has_each_filters_norm():
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(6, 5)]
    params = [p for m in layers for p in m.parameters()]
    d = surface.filter_normalised(params, torch.Generator().manual_seed(1))
    i = 0
    for p in params:
        part, i = d[i:i + p.numel()].view_as(p), i + p.numel()
        if p.dim() == 1:  # biases and batch norm's scale and shift: not moved
            assert torch.count_nonzero(part) == 0
        else:
            assert torch.allclose(part.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5)
            assert not torch.allclose(part, p.detach())  # a random direction, not the weights themselves
    assert i == len(d)


def test_pca_directions_span_the_paths_plane():
    u, v = torch.zeros(50), torch.zeros(50)
    u[3], v[7] = 1.0, 1.0
    t = torch.linspace(0, 1, 20)[:, None]
    d1, d2, share = surface.pca_directions(5 * t * u + torch.sin(6 * t) * v)
    assert float(d1 @ d1) == pytest.approx(1, abs=1e-5) and float(d1 @ d2) == pytest.approx(0, abs=1e-5)
    for d in (d1, d2):  # both in the plane of u and v: nothing elsewhere
        assert float(d[3] ** 2 + d[7] ** 2) == pytest.approx(1, abs=1e-5)
    assert share[0] > share[1] > 0 and sum(share) == pytest.approx(1)
    assert surface.pca_directions(t * u) is None  # a straight path spans one direction


@pytest.mark.parametrize("kwargs, message", [
    (dict(grids=["model.hidden=[8],[16]"]), "would change the surface itself"),
    (dict(grids=["optim.lr"]), "--grid expects key=value"),
    (dict(grids=["optim.lrr=0.1,0.2"]), "unknown config key"),
    (dict(grids=["optim.name=sgd,adamm"]), "adamm"),
    (dict(grids=["optim.lr=" + ",".join(str(i / 10) for i in range(1, 10))]), "at most 8"),
    (dict(resolution=3), "--resolution"),
    (dict(directions="sideways"), "--directions"),
    (dict(fix=["linear.bais=0"]), "did you mean 'linear.bias'"),
    (dict(fix=["linear.bias=abc"]), "NAME=NUMBER"),
    (dict(fix=["linear.bias=0", "linear.weight=1"]), "a surface needs at least two"),
])
def test_bad_inputs_are_one_error_and_write_nothing(line, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message) as e:
        surface.run(line(), out=str(tmp_path / "s"), **kwargs)
    assert "\n" not in str(e.value) and not (tmp_path / "s").exists()


def test_out_folder_rules(line, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        surface.run(line(), out=str(tmp_path / "busy"))
    surface.run(line("train.epochs=2"), out=str(tmp_path / "s"), resolution=5)
    surface.run(line("train.epochs=3"), out=str(tmp_path / "s"), resolution=5)  # an earlier map's folder: rewritten
    assert json.loads((tmp_path / "s" / "surface.json").read_text())["paths"][0]["steps"] == 3


def _registered() -> bool:
    from dlseminar.cli import app

    return any((c.name or c.callback.__name__) == "surface" for c in app.registered_commands)


@pytest.mark.skipif(not _registered(), reason="`dlsem surface` is not registered in cli.py yet")
def test_cli_prints_a_line_per_path_and_one_error_line(dlsem, line, tmp_path):
    path = line()["data.path"]
    sets = [a for s in [*LINE, f"data.path={path}"] for a in ("--set", s)]
    r = dlsem("surface", *sets, "--grid", "optim.lr=0.05,0.3", "--out", "m", "--resolution", "5")
    assert r.rc == 0, r
    assert "lr=0.05: still falling" in r.out and "lr=0.3: diverged" in r.out and (tmp_path / "m" / "surface.png").exists()
    r = dlsem("surface", *sets, "--grid", "data.n_samples=10,20")
    assert r.rc == 2 and r.err.count("\n") == 1 and r.err.startswith("error:"), r
