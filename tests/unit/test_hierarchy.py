"""The feature hierarchy (dlseminar/viz/hierarchy.py): the patch around a filter's strongest activation,
the measured receptive field, the layers chosen, and the figure from a checkpoint (inference.feature_hierarchy)."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dlseminar import inference
from dlseminar.errors import ConfigError
from dlseminar.viz.hierarchy import chosen_layers, crop_box, cut, patches, peaks, receptive_field


def test_peaks_find_each_images_strongest_activation_per_filter():
    maps = torch.zeros(3, 2, 7, 9)
    maps[1, 0, 4, 6] = 5.0
    maps[2, 1, 0, 8] = 3.0
    values, rows, cols = peaks(maps)
    assert values[1, 0] == 5 and (rows[1, 0], cols[1, 0]) == (4, 6)
    assert values[2, 1] == 3 and (rows[2, 1], cols[2, 1]) == (0, 8)


def test_the_crop_is_the_receptive_field_centred_on_the_unit():
    # a 14x14 map of a 28x28 input (one 2x2 pool): unit 4 covers input rows 8 and 9, centre 8.5
    assert crop_box(4, 4, (28, 28), (14, 14), (4, 4)) == (7, 7, 11, 11)
    # a full-size map: unit (0, 5) is centred on pixel (0, 5); a 3x3 field reaches one row above the image
    assert crop_box(0, 5, (8, 8), (8, 8), (3, 3)) == (-1, 4, 2, 7)
    image = torch.arange(25.0).reshape(1, 5, 5)
    inside, offset = cut(image, (-1, -1, 2, 2))
    assert offset == (1, 1) and inside.tolist() == [[[0.0, 1.0], [5.0, 6.0]]]


def box_filter_model() -> nn.Module:
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(1, 2, 3, padding=1))


def test_the_top_patch_of_a_hand_made_filter_is_the_bright_square():
    model = box_filter_model()
    X = torch.zeros(4, 1, 12, 12, dtype=torch.uint8)
    X[2, 0, 5:8, 2:5] = 255  # a 3x3 bright square: the box filter's maximum is at its centre (6, 3)
    X[0, 0, 0, 0] = 255  # a single bright pixel elsewhere: a weaker response
    data = SimpleNamespace(splits={"train": (X, torch.zeros(4))}, transform=lambda device: None,
                           stats={"scale": torch.tensor(255.0)})
    noise = torch.randn(16, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert receptive_field(model, model[0], noise) == (3, 3)
    assert receptive_field(model, model[3], noise) == (8, 8)  # 3 + 1 (pool) + 2 x 2 (conv after the pool)
    assert receptive_field(model, model[3], X[1:2].float()) == (12, 12)  # a black image: no gradient, the whole input
    rows = patches(model, data, "cpu", filters=1, top_k=2)
    level, layer, f, rf, crops = rows[0]
    assert (level, layer, f, rf) == ("low-level", "0", 0, (3, 3))
    best, offset = crops[0]
    assert offset == (0, 0) and best.shape == (1, 3, 3) and (best == 1).all()  # exactly the square
    assert [r[:2] for r in rows] == [("low-level", "0"), ("high-level", "3")]  # two convs: no middle one


def test_early_middle_and_late_layers_prefer_convs_wider_than_1x1():
    model = nn.Sequential(*[nn.Conv2d(2, 2, k) for k in (3, 1, 3, 3, 1, 3)])
    assert chosen_layers(model) == [("low-level", "0"), ("mid-level", "3"), ("high-level", "5")]
    assert chosen_layers(nn.Sequential(nn.Conv2d(1, 2, 3))) == [("low-level", "0")]
    assert chosen_layers(nn.Sequential(nn.Linear(2, 2))) == []


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hierarchy")
    r = subprocess.run([sys.executable, "-m", "dlseminar", "train", "--data", "digits_images", "--model", "cnn",
                        "--epochs", "1", "--out", str(d / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return d


def test_the_figure_is_written_from_a_checkpoint_and_not_replaced_unasked(digits_run, tmp_path):
    ckpt = str(digits_run / "run/best.pt")
    path = inference.feature_hierarchy(ckpt, tmp_path / "plots")
    assert path == tmp_path / "plots/features_hierarchy.png" and path.stat().st_size > 5000
    with pytest.raises(ConfigError, match="already exists"):
        inference.feature_hierarchy(ckpt, tmp_path / "plots")
    assert inference.feature_hierarchy(ckpt, tmp_path / "plots", overwrite=True) == path
