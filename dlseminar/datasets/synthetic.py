"""Generated 2-D lesson datasets, deterministic by seed (no download, no files)."""
from __future__ import annotations

import numpy as np

from ..data.table import Table
from ..registry import DATASETS

XY = ["x1", "x2"]
TRUE_LINE = {"w0": -1.75, "w": [1.0, 1.75]}  # x1 + 1.75*x2 - 1.75: the slides' line (linear) and plane (plane)


def _noise(noise, default):
    return default if noise is None else noise


@DATASETS.register("xor", kind="classification")
def xor(seed, n_samples=500, noise=None):
    """XOR: four clusters at the unit square's corners, class = x1 XOR x2 (no single line separates them)."""
    rng = np.random.RandomState(seed)
    corner = rng.permutation(np.arange(n_samples) % 4)  # equal cluster sizes ...
    bits = np.stack([corner // 2, corner % 2], 1)
    X = bits + rng.normal(0, _noise(noise, 0.1), size=(n_samples, 2))
    # ... kept equal in every split, so "a line gets 3 of 4 clusters" is exactly 0.75
    return Table(X, bits[:, 0] ^ bits[:, 1], "classification", XY, ["0", "1"], strata=corner)


@DATASETS.register("linear", kind="classification")
def linear(seed, n_samples=500, noise=None):
    """Two classes split by the line x1 + 1.75*x2 - 1.75 = 0 (the perceptron lesson); noise blurs the border."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 3, size=(n_samples, 2))
    margin = X[:, 0] + 1.75 * X[:, 1] - 1.75 + rng.normal(0, _noise(noise, 0.0), n_samples)
    return Table(X, (margin > 0).astype(np.int64), "classification", XY, ["below", "above"], truth=TRUE_LINE)


@DATASETS.register("line", kind="regression")
def line(seed, n_samples=500, noise=None):
    """y = 1.75*x - 1.75 + noise, x in 0..4: one input, so a perceptron has two weights (the loss-surface lesson)."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(0, 4, size=(n_samples, 1))
    y = 1.75 * x[:, 0] - 1.75 + rng.normal(0, _noise(noise, 0.3), n_samples)
    return Table(x, y, "regression", ["x"], None, "y", truth={"w0": -1.75, "w": [1.75]})


@DATASETS.register("moons", kind="classification")
def moons(seed, n_samples=500, noise=None):
    """Two interleaving half-moons (scikit-learn's make_moons)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples, noise=_noise(noise, 0.2), random_state=seed)
    return Table(X, y, "classification", XY, ["0", "1"])


@DATASETS.register("circles", kind="classification")
def circles(seed, n_samples=500, noise=None):
    """A circle inside a ring (scikit-learn's make_circles, factor 0.5)."""
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples, noise=_noise(noise, 0.08), factor=0.5, random_state=seed)
    return Table(X, y, "classification", XY, ["outer", "inner"])


@DATASETS.register("spirals", kind="classification")
def spirals(seed, n_samples=500, noise=None):
    """Two interleaved spirals: a hard non-linear boundary for deeper MLPs."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n_samples)
    t = np.sqrt(rng.uniform(0, 1, n_samples)) * 3 * np.pi  # angle, denser towards the centre
    r = t / (3 * np.pi) * 2
    X = np.stack([r * np.cos(t + np.pi * y), r * np.sin(t + np.pi * y)], 1)
    X += rng.normal(0, _noise(noise, 0.05), X.shape)
    return Table(X, y, "classification", XY, ["0", "1"])


@DATASETS.register("plane", kind="regression")
def plane(seed, n_samples=500, noise=None):
    """Regression plane y = x1 + 1.75*x2 - 1.75 + noise (the perceptron-regression lesson)."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n_samples, 2))
    y = X[:, 0] + 1.75 * X[:, 1] - 1.75 + rng.normal(0, _noise(noise, 0.1), n_samples)
    return Table(X, y, "regression", XY, None, "y", truth=TRUE_LINE)


@DATASETS.register("fish", kind="classification")
def fish(seed, n_samples=500, noise=None):
    """Salmon vs sea bass from lightness and width (generated; sea bass are lighter and wider)."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n_samples)
    spread = _noise(noise, 1.0)
    lightness = np.where(y == 0, 3.5, 6.0) + rng.normal(0, 0.9 * spread, n_samples)
    width = np.where(y == 0, 16.0, 19.0) + rng.normal(0, 1.3 * spread, n_samples)
    return Table(np.stack([lightness, width], 1), y, "classification", ["lightness", "width"], ["salmon", "sea bass"])
