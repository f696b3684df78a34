"""The CLI on segmentation: `--data shapes_seg --model unet` trains, and `dlsem eval` reproduces the test mIoU."""
from __future__ import annotations

import json

from conftest import read_summary

TINY = ("--data", "shapes_seg", "--model", "unet", "--set", "data.n_samples=40", "--set", "data.image_size=32",
        "--set", "model.depth=2", "--set", "model.base_width=8", "--set", "logging.plots=false")


def test_unet_on_shapes_seg_trains_and_eval_reproduces_the_test_miou(dlsem, tmp_path):
    r = dlsem("train", *TINY, "--set", "model.upsample=unpool", "--loss", "ce_dice", "--epochs", "2", "--out", "run")
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["task"] == "segmentation" and s["model"] == "unet" and s["loss"] == "ce_dice"
    assert s["monitor"] == "val/miou" and s["epochs_run"] == 2
    assert set(s["test"]) == {"test/loss", "test/acc", "test/miou", "test/dice"}
    assert 0 <= s["test"]["test/miou"] <= 1 and "val/miou" in s["best"]
    e = dlsem("eval", "run/best.pt", "--json")
    assert e.rc == 0, e
    assert json.loads(e.out) == s["test"]  # exactly: same data, stats and weights from the checkpoint
    t = dlsem("eval", "run/best.pt", "--split", "val")
    assert t.rc == 0, t
    assert "iou" in t.out and "background" in t.out and "triangle" in t.out, t
    assert f"{s['best']['val/miou']:.4f}" in t.out, t


def test_segmentation_mismatches_exit_2(dlsem):
    r = dlsem("train", *TINY, "--loss", "mse", "--epochs", "1")
    assert r.rc == 2 and "does not fit a segmentation task" in r.err, r
    r = dlsem("train", *TINY, "--set", "task=classification", "--epochs", "1")
    assert r.rc == 2 and "is for segmentation" in r.err, r
    r = dlsem("train", "--data", "digits", "--loss", "dice", "--epochs", "1")
    assert r.rc == 2 and "does not fit a classification task" in r.err, r
