"""dlsem zoo: image classifiers of the registry trained alike, ranked with params, FLOPs and seconds per epoch.

The runs are tiny (40 generated 3x16x16 shapes, cnn and lenet5, 1-2 epochs): what is checked is the
bookkeeping (counts, FLOPs, timing, ranking, restart, failures, errors), not the accuracies.
"""
from __future__ import annotations

import csv
import math

import pytest

from conftest import read_summary

TINY = ["--set", "data.n_samples=40", "--set", "data.image_size=16", "--set", "logging.plots=false"]
SHAPE = (3, 16, 16)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _build(name, shape=SHAPE, classes=4):
    from dlseminar import catalog
    from dlseminar.config import resolve
    from dlseminar.models import build_model

    catalog.load_all()
    return build_model(resolve(sets=[f"model.name={name}"]), shape, classes, "scores")


def test_zoo_table_counts_and_restart(dlsem, tmp_path):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    r = dlsem("zoo", "--models", "cnn,lenet5", "--epochs", "2", *TINY)
    assert r.rc == 0, r
    root = tmp_path / "runs" / "zoo-shapes"
    rows = _csv(root / "zoo.csv")
    assert sorted(row["model"] for row in rows) == ["cnn", "lenet5"]
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert all(row["status"] == "finished" for row in rows)
    accs = [float(row["val_acc"]) for row in rows]
    assert accs == sorted(accs, reverse=True)  # ranked by best val accuracy
    by = {row["model"]: row for row in rows}
    for name, row in by.items():
        run = root / f"model.name={name}"
        assert row["dir"] == str(run.relative_to(tmp_path))
        s = read_summary(run)
        model = _build(name)
        assert int(row["params"]) == sum(p.numel() for p in model.parameters()) == s["params"]
        assert float(row["val_acc"]) == s["best"]["val/acc"]
        assert float(row["test_acc"]) == s["test"]["test/acc"]
        assert row["epochs_run"] == "2"
        seconds = [float(m["seconds"]) for m in _csv(run / "metrics.csv")]
        assert len(seconds) == 2 and math.isclose(float(row["s_per_epoch"]), sum(seconds) / 2, rel_tol=1e-12)
    # cnn's default widths [8, 16] by hand: conv3x3 3->8 at 16x16, 2x2 pool, conv3x3 8->16 at 8x8, pool,
    # linear 16*4*4 -> 4 classes; a multiply-add is 2 FLOPs (biases, ReLU and pooling are not counted)
    macs = 8 * 16 * 16 * 3 * 9 + 16 * 8 * 8 * 8 * 9 + (16 * 4 * 4) * 4
    assert int(by["cnn"]["flops"]) == 2 * macs == 260_096
    lenet = _build("lenet5").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        lenet(torch.zeros(1, *SHAPE))
    assert int(by["lenet5"]["flops"]) == counter.get_total_flops() > 0
    png = root / "plots" / "zoo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (root / "sweep.json").exists() and (root / "sweep.csv").exists()  # it is a sweep underneath
    assert "lenet5" in r.out and "multiply-add" in r.out and "zoo.csv" in r.out

    before = {n: (root / f"model.name={n}" / "metrics.csv").read_text() for n in by}
    again = dlsem("zoo", "--models", "cnn,lenet5", "--epochs", "2", *TINY)
    assert again.rc == 0, again
    assert again.out.count("finished earlier, skipped") == 2
    assert {n: (root / f"model.name={n}" / "metrics.csv").read_text() for n in by} == before
    assert _csv(root / "zoo.csv") == rows

    # other epochs in the same directory would mix 2-epoch and 3-epoch models in one table: refused
    other = dlsem("zoo", "--models", "cnn,lenet5", "--epochs", "3", *TINY)
    assert other.rc == 2 and other.err.strip().startswith("error: ") and len(other.err.strip().splitlines()) == 1
    assert "train.epochs = 2" in other.err and "--epochs" in other.err
    assert {n: (root / f"model.name={n}" / "metrics.csv").read_text() for n in by} == before

    # `dlsem report` on a zoo directory shows the zoo table (params, FLOPs) before the sweep's ranking
    rep = dlsem("report", root)
    assert rep.rc == 0, rep
    html = (root / "report.html").read_text()
    zoo_part = html.split("Zoo (zoo.csv)")[1].split("Ranked (sweep.csv")[0]
    assert "lenet5" in zoo_part and ">flops<" in zoo_part and f">{int(by['cnn']['params'])}<" in zoo_part


def test_a_model_that_stays_at_chance_is_marked_not_learned(dlsem, tmp_path):
    r = dlsem("zoo", "--models", "cnn", "--epochs", "1", *TINY, "--set", "optim.lr=1e-9", "--set",
              "logging.plots=true")
    assert r.rc == 0, r
    row = _csv(tmp_path / "runs" / "zoo-shapes" / "zoo.csv")[0]
    assert row["learned"] == "False" and "not learned in 1 epoch " in r.out
    assert "chance: 0.25" in r.out.replace("\n", " ") or "chance: 0.2" in r.out  # 4 balanced classes
    assert float(row["params_per_image"]) == pytest.approx(int(row["params"]) / 24)  # 24 of 40 images train


def test_chance_level_and_the_learned_mark():
    import torch

    from dlseminar.data import Data, DataInfo
    from dlseminar.zoo import chance_of, learned

    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)  # the majority class: 0.5 of the val split
    data = Data(DataInfo("d", "classification", (3, 8, 8), 3), {"train": (None, torch.zeros(300)), "val": (None, y)})
    level = chance_of(data)
    assert level["chance"] == 0.5 and level["n_val"] == 100 and level["n_train"] == 300
    assert level["learned_above"] == pytest.approx(0.5 + 2 * math.sqrt(0.25 / 100))  # 0.6
    row = {"status": "finished", "val_acc": 0.59}
    assert learned(row, level) is False and learned({**row, "val_acc": 0.61}, level) is True
    assert learned({"status": "failed", "val_acc": math.nan}, level) is None


def test_failed_member_does_not_stop_the_others(dlsem, tmp_path):
    # AlexNet's ImageNet stem cannot take 16 px: that member fails, cnn (no stem option) still trains;
    # --jobs 2: the members run as child processes
    r = dlsem("zoo", "--models", "alexnet,cnn", "--epochs", "1", "--jobs", "2", "--out", "z",
              "--set", "model.stem=imagenet", *TINY)
    assert r.rc == 1, r
    rows = _csv(tmp_path / "z" / "zoo.csv")
    assert [(row["model"], row["status"]) for row in rows] == [("cnn", "finished"), ("alexnet", "failed")]
    assert "63x63" in rows[1]["error"] and rows[1]["val_acc"] == ""
    assert (tmp_path / "z" / "plots" / "zoo.png").exists()


@pytest.mark.parametrize("args, words", [
    (["--models", "cnn,resnt18"], ["'resnt18'", "did you mean 'resnet18'", "choose from", "vgg16_bn"]),
    (["--models", "cnn,mlp"], ["'mlp'", "not an image classifier"]),
    (["--data", "digits"], ["'digits'", "64 features", "not C x H x W images"]),
    (["--data", "shapes_seg"], ["'shapes_seg'", "segmentation"]),
    (["--set", "model.name=cnn"], ["--models"]),
])
def test_bad_input_is_one_error_line(dlsem, tmp_path, args, words):
    r = dlsem("zoo", "--epochs", "1", *args)
    assert r.rc == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r
    for w in words:
        assert w in lines[0]
    assert not (tmp_path / "runs").exists()  # stopped before anything trained


def test_default_models_are_the_registrys_image_classifiers():
    """Every registered model that classifies a 3x32x32 image into (1, classes) scores and cannot take a
    flat feature vector, found by building each one: the zoo's default list cannot drift from the registry."""
    import torch

    from dlseminar import catalog, registry, zoo
    from dlseminar.errors import ConfigError

    catalog.load_all()
    expected = []
    for name in registry.MODELS.names():
        try:
            model = _build(name, (3, 32, 32), 4).eval()
            with torch.no_grad():
                ok = tuple(model(torch.zeros(1, 3, 32, 32)).shape) == (1, 4)  # unet: (1, 4, 32, 32)
        except ConfigError:  # detectors give boxes, not scores
            continue
        try:
            _build(name, (64,), 4)
            continue  # takes tables too (mlp, perceptron)
        except ConfigError:
            pass
        if ok:
            expected.append(name)
    assert zoo.image_classifiers() == expected
    assert zoo.choose_models(None) == expected
    assert {"cnn", "lenet5", "alexnet", "vgg11", "vgg19_bn", "googlenet", "resnet18", "resnet50"} <= set(expected)
    assert not {"mlp", "perceptron", "unet", "fasterrcnn"} & set(expected)
