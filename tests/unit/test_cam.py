"""Grad-CAM (dlseminar/viz/cam.py): where the evidence for a class lies, on a model whose answer is known,
which feature map it reads in the zoo, and `dlsem predict --cam`'s files (inference.predict_images)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from dlseminar import config, inference
from dlseminar.errors import ConfigError, UserError
from dlseminar.models import build_model
from dlseminar.viz.cam import class_scores, grad_cam


class HalfMask(nn.Module):
    """Channel 0 keeps only the left half of the map, channel 1 only the right half."""

    def forward(self, a):
        keep = torch.zeros_like(a)
        half = a.shape[-1] // 2
        keep[:, 0, :, :half] = 1
        keep[:, 1, :, half:] = 1
        return a * keep


def left_right_model() -> nn.Module:
    """Class 0's score is the left half's brightness, class 1's the right half's; a pool follows the maps."""
    conv = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0, 1, 1] = 1.0  # each channel copies the input
        conv.bias.zero_()
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), HalfMask(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


def test_the_heatmap_lies_where_the_class_score_comes_from():
    torch.manual_seed(0)
    model = left_right_model()
    x = torch.rand(3, 1, 16, 20) + 0.1
    for cls, side in ((0, slice(0, 10)), (1, slice(10, 20))):
        heat, layer = grad_cam(model, x, torch.full((3,), cls))
        assert heat.shape == (3, 16, 20)
        assert heat.min() >= 0 and heat.max() <= 1 and torch.allclose(heat.flatten(1).amax(1), torch.ones(3))
        share = heat[..., side].sum((1, 2)) / heat.sum((1, 2))
        assert (share > 0.95).all(), (cls, share)
        # the last map that is not a pool's output: the mask (index 2), at full size, not the pool after it
        assert layer == "2 (HalfMask, 2x16x20)"


def test_a_class_without_evidence_gives_an_empty_map():
    model = left_right_model()
    x = torch.zeros(1, 1, 8, 8)
    x[..., :4] = 1.0  # only the left half is lit: class 1 (right) has nothing to point at
    heat, _ = grad_cam(model, x, torch.tensor([1]))
    assert heat.abs().sum() == 0


def test_a_single_logit_binary_model_scores_class_0_as_minus_z():
    out = torch.tensor([[2.0], [-1.0]])
    assert class_scores(out, torch.tensor([1, 0])).tolist() == [2.0, 1.0]
    assert class_scores(torch.tensor([[1.0, 5.0]]), torch.tensor([1])).tolist() == [5.0]


@pytest.mark.parametrize("name, layer", [("resnet18", "layer4 (Sequential, 512x4x4)"),
                                         ("googlenet", "inception5b (Inception, 1024x8x8)"),
                                         ("vgg11", "features.19 (ReLU, 512x2x2)"),
                                         ("alexnet", "features.11 (ReLU, 256x7x7)"),
                                         ("cnn", "4 (ReLU, 16x16x16)")])
def test_every_zoo_classifier_gets_a_heatmap_from_the_map_its_head_reads(name, layer):
    torch.manual_seed(0)
    model = build_model(config.resolve(sets=[f"model.name={name}"]), (3, 32, 32), 5, "scores")
    heat, found = grad_cam(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 4]))
    assert found == layer  # ResNet: after the last skip is added; GoogLeNet: all four branches
    assert heat.shape == (2, 32, 32) and heat.min() >= 0 and heat.max() <= 1
    assert set(heat.flatten(1).amax(1).tolist()) <= {0.0, 1.0} and heat.max() == 1  # each map scaled to its max


def test_a_model_without_class_scores_is_refused():
    seg = nn.Conv2d(3, 4, 3, padding=1)  # (B, 4, H, W): a segmentation model's output
    with pytest.raises(UserError, match="classifier"):
        grad_cam(seg, torch.randn(1, 3, 8, 8), torch.tensor([0]))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cam")
    r = subprocess.run([sys.executable, "-m", "dlseminar", "train", "--data", "digits_images", "--model", "cnn",
                        "--epochs", "1", "--out", str(d / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return d


def test_predict_with_cam_writes_a_heatmap_per_image(digits_run, tmp_path):
    from PIL import Image

    for i, v in enumerate((30, 200)):
        Image.new("L", (40, 30), v).save(tmp_path / f"img{i}.png")
    results, X, _ = inference.predict_images(str(digits_run / "run/best.pt"), [str(tmp_path)], 3,
                                             out=tmp_path / "pred", cam=True)
    assert [r["cam"] for r in results] == [str(tmp_path / f"pred/000{i}_img{i}_cam.png") for i in (0, 1)]
    for r in results:
        assert (tmp_path / "pred" / r["cam"]).stat().st_size > 1000 and "annotated" in r
    with pytest.raises(ConfigError, match="--out"):
        inference.predict_images(str(digits_run / "run/best.pt"), [str(tmp_path / "img0.png")], cam=True)
