"""`dlsem models show` with the structure column and --plot, `dlsem predict --cam` and `--hierarchy`."""
from __future__ import annotations

import json


def test_models_show_marks_the_structure_and_draws_the_diagram(dlsem, tmp_path):
    r = dlsem("models", "show", "googlenet", "--plot", "g.png")
    assert r.rc == 0, r
    assert r.out.count("auxiliary head 1 on inception4a") == 1 and r.out.count("auxiliary head 2 on inception4d") == 1
    assert (tmp_path / "g.png").stat().st_size > 10_000 and "block diagram: g.png" in r.out
    again = dlsem("models", "show", "googlenet", "--plot", "g.png")
    assert again.rc == 2 and "error: --plot 'g.png' already exists" in again.err, again
    r = dlsem("models", "show", "resnet18")
    assert r.out.count("identity skip") == 5 and r.out.count("projection skip") == 3
    r = dlsem("models", "show", "cnn", "--input", "1x28x28", "--set", "model.widths=[8,16]")
    assert "4,923,520" in r.out  # 784 * 6272 + 6272: the first conv's fully connected equivalent


def test_predict_writes_grad_cams_and_the_feature_hierarchy(dlsem, tmp_path):
    from PIL import Image

    assert dlsem("train", "--data", "digits_images", "--model", "cnn", "--epochs", "1", "--out", "run").rc == 0
    Image.new("L", (20, 20), 40).save(tmp_path / "digit.png")
    p = dlsem("predict", "run/best.pt", "digit.png", "--json", "--out", "pred", "--cam", "--hierarchy")
    assert p.rc == 0, p
    assert json.loads(p.out)[0]["cam"] == "pred/0000_digit_cam.png" and (tmp_path / "pred/0000_digit_cam.png").exists()
    assert (tmp_path / "pred/features_hierarchy.png").exists() and "feature hierarchy: pred/features_hierarchy.png" in p.err
    bad = dlsem("predict", "run/best.pt", "digit.png", "--hierarchy")
    assert bad.rc == 2 and bad.err.strip() == "error: --hierarchy writes features_hierarchy.png: give --out DIR", bad
    bad = dlsem("predict", "run/best.pt", "digit.png", "--cam")
    assert bad.rc == 2 and "error: --cam writes a heatmap image per input: give --out DIR" in bad.err, bad
