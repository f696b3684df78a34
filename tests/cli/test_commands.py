"""The command-line contract: help, listings, config show, run directories, CSV data."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from conftest import CONFIGS, read_summary


def test_help_does_not_import_torch():
    code = ("import sys; sys.argv = ['dlsem', '--help']\n"
            "from dlseminar.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'dlsem --help imported torch'\n"
            "print('OK')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stderr
    for cmd in ("train", "eval", "models", "datasets", "config"):
        assert cmd in r.stdout


def test_models_and_datasets_list_with_descriptions(dlsem):
    m = dlsem("models")
    assert m.rc == 0 and "perceptron" in m.out and "Multi-layer perceptron" in m.out, m
    d = dlsem("datasets")
    for name in ("xor", "linear", "moons", "circles", "spirals", "plane", "fish", "digits", "iris", "wine",
                 "breast_cancer", "diabetes", "csv"):
        assert name in d.out, name


def test_config_show_prints_every_key_as_valid_yaml(dlsem):
    from dlseminar.config import SCHEMA

    r = dlsem("config", "show", CONFIGS / "xor_mlp.yaml", "--set", "optim.lr=0.2")
    assert r.rc == 0, r
    shown = yaml.safe_load(r.out)
    assert shown["optim"]["lr"] == 0.2 and shown["model"]["hidden"] == [8] and shown["name"] == "xor_mlp"
    flat = {f"{s}.{k}" for s, v in shown.items() if isinstance(v, dict) for k in v} | {k for k, v in shown.items() if not isinstance(v, dict)}
    assert flat == set(SCHEMA)
    assert "# learning rate" in r.out


def test_named_options_win_over_file_and_run_dirs_are_numbered(dlsem, tmp_path):
    args = ["train", CONFIGS / "xor_perceptron.yaml", "--epochs", "2", "--lr", "0.01", "--set", "logging.plots=false"]
    assert dlsem(*args).rc == 0
    assert dlsem(*args).rc == 0
    first, second = tmp_path / "runs/xor_perceptron", tmp_path / "runs/xor_perceptron-2"
    for d in (first, second):
        for f in ("config.yaml", "metrics.csv", "summary.json", "best.pt", "last.pt"):
            assert (d / f).exists(), d / f
    cfg = yaml.safe_load((first / "config.yaml").read_text())
    assert cfg["optim"]["lr"] == 0.01 and cfg["train"]["epochs"] == 2 and cfg["optim"]["name"] == "sgd"
    header = (first / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["epoch", "lr", "train/loss", "val/loss", "val/acc", "seconds"]
    s = read_summary(first)
    for key in ("best_epoch", "epochs_run", "stopped_early", "stop_reason", "best", "test"):
        assert key in s
    assert s["epochs_run"] == 2 and s["stop_reason"] == "reached train.epochs (2)"


def test_full_batch_takes_one_step_per_epoch(dlsem, tmp_path):
    r = dlsem("train", "--data", "iris", "--batch-size", "full", "--epochs", "3", "--optimizer", "sgd",
              "--out", "run", "--set", "logging.plots=false")
    assert r.rc == 0, r
    import torch

    last = torch.load(tmp_path / "run/last.pt", weights_only=True)
    assert last["step"] == 3


def test_csv_dataset_trains_and_evaluates(dlsem, tmp_path):
    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    lines = ["f1,f2,f3,answer"] + [f"{a:.4f},{b:.4f},{c:.4f},{y}" for (a, b, c), y in zip(X, label)]
    (tmp_path / "my.csv").write_text("\n".join(lines) + "\n")
    r = dlsem("train", "--data", "csv", "--set", "data.path=my.csv", "--set", "data.target=answer",
              "--set", "model.hidden=[16]", "--epochs", "30", "--lr", "0.01", "--out", "run", "--set", "logging.plots=false")
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["task"] == "classification" and s["test"]["test/acc"] > 0.85
    e = dlsem("eval", "run/best.pt", "--json")
    assert json.loads(e.out) == s["test"]


def test_models_show_gives_the_lessons_parameter_counts(dlsem):
    r = dlsem("models", "show", "cnn", "--input", "1x8x8", "--set", "model.widths=[8,16]")
    assert r.rc == 0, r
    convs = [ln for ln in r.out.splitlines() if "Conv2d" in ln]
    assert "80" in convs[0].split()[-2:][-1] or convs[0].rstrip(" │").endswith("80"), convs
    assert "1,168" in convs[1], convs
    listing = dlsem("models", "--input", "3x224x224", "--classes", "1000")
    assert "11,689,512" in listing.out and "61,100,840" in listing.out  # resnet18, alexnet as torchvision


def test_cnn_run_writes_image_plots_and_predict_shows_feature_maps(dlsem, tmp_path):
    from PIL import Image

    r = dlsem("train", "--data", "digits_images", "--model", "cnn", "--epochs", "1", "--out", "run")
    assert r.rc == 0, r
    for plot in ("curves.png", "confusion_matrix.png", "filters.png", "mistakes.png"):
        assert (tmp_path / "run/plots" / plot).stat().st_size > 1000, plot
    Image.new("L", (50, 70), 30).save(tmp_path / "digit.png")
    p = dlsem("predict", "run/best.pt", "digit.png", "--top-k", "3", "--json", "--out", "pred", "--features")
    assert p.rc == 0, p
    result = json.loads(p.out)[0]
    probs = [t["prob"] for t in result["top"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    maps = sorted(f.name for f in (tmp_path / "pred").glob("features_*.png"))
    assert len(maps) == 2, maps  # the cnn's two conv layers
    assert (tmp_path / "pred/0000_digit.png").exists()
