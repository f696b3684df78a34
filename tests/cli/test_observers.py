"""What observers write: TensorBoard event files (read back with TensorBoard's own reader), the
decision-boundary GIF for 2-D classifiers, and curves.png's early-stopping marks."""
from __future__ import annotations

import shutil

import pytest
import torch

from conftest import CONFIGS, metrics_rows, read_summary

FAST = ["--set", "checkpoint.min_interval_s=0"]


def _events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()  # also applies purge_step: events an interrupted process wrote after its checkpoint go
    return acc


def test_tensorboard_events_read_back(dlsem, tmp_path):
    r = dlsem("train", "--epochs", "4", "--patience", "0", "--batch-size", "256", "--out", "run",
              "--set", "logging.tensorboard=true", *FAST)
    assert r.rc == 0, r
    run = tmp_path / "run"
    acc = _events(run / "tensorboard")
    tags = acc.Tags()
    rows = metrics_rows(run)
    summary = read_summary(run)
    # every epoch's metrics.csv numbers, at the epoch's last optimizer step
    for key in ("train/loss", "val/loss", "val/acc", "lr", "epoch"):
        events = acc.Scalars(key)
        assert [e.value for e in events] == pytest.approx([float(r[key]) for r in rows], rel=1e-6), key
    from dlseminar import run as run_mod
    from dlseminar.config import resolve

    n_train = len(run_mod.build(resolve(None)).data.splits["train"][1])
    steps_per_epoch = -(-n_train // 256)
    epoch_steps = [e.step for e in acc.Scalars("epoch")]
    assert epoch_steps == [steps_per_epoch * (i + 1) for i in range(4)]
    # one loss and lr per optimizer step; their mean over an epoch is the epoch's train/loss (equal batches
    # but the last: weight by batch size)
    step_loss = acc.Scalars("step/loss")
    assert [e.step for e in step_loss] == list(range(1, 4 * steps_per_epoch + 1))
    assert len(acc.Scalars("step/lr")) == len(step_loss)
    sizes = [256] * (steps_per_epoch - 1) + [n_train - 256 * (steps_per_epoch - 1)]
    first = sum(e.value * n for e, n in zip(step_loss[:steps_per_epoch], sizes)) / n_train
    assert first == pytest.approx(float(rows[0]["train/loss"]), rel=1e-5)
    # the run's plots as images, and the final metrics for the HPARAMS tab
    pngs = {p.rsplit("/", 1)[-1][:-4] for p in summary["plots"] if p.endswith(".png")}
    assert pngs and set(tags["images"]) == pngs
    img = acc.Images("curves")[0]
    assert img.width > 100 and img.height > 100
    assert acc.Scalars("hparams/test/acc")[0].value == pytest.approx(summary["test"]["test/acc"], rel=1e-6)
    hp = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in hp and "_hparams_/session_start_info" in hp
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optim.name"].string_value == "adam"
    assert start.hparams["train.epochs"].number_value == 4


def test_tensorboard_resume_hides_what_came_after_the_checkpoint(dlsem, tmp_path):
    """An interrupted process may have logged steps after its last checkpoint; the resumed run's
    purge_step hides them, so each epoch appears once, with the resumed run's values."""
    args = ["--patience", "0", "--batch-size", "256", "--set", "logging.tensorboard=true", "--set", "logging.plots=false", *FAST]
    assert dlsem("train", "--epochs", "2", "--out", "run", *args).rc == 0
    shutil.copy(tmp_path / "run/last.pt", tmp_path / "epoch2.pt")
    assert dlsem("train", "--resume", "run/last.pt", "--epochs", "4").rc == 0  # stands for the lost process
    shutil.copy(tmp_path / "epoch2.pt", tmp_path / "run/last.pt")
    assert dlsem("train", "--resume", "run/last.pt", "--epochs", "5").rc == 0
    acc = _events(tmp_path / "run/tensorboard")
    rows = metrics_rows(tmp_path / "run")
    assert [int(e.value) for e in acc.Scalars("epoch")] == [1, 2, 3, 4, 5]
    assert [e.value for e in acc.Scalars("val/loss")] == pytest.approx([float(r["val/loss"]) for r in rows], rel=1e-6)
    steps = [e.step for e in acc.Scalars("step/loss")]
    assert steps == sorted(set(steps)) and len(steps) == 5 * 5  # 5 steps an epoch, none doubled


def test_decision_boundary_gif_moves_and_survives_resume(dlsem, tmp_path):
    from PIL import Image, ImageChops

    cfg = CONFIGS / "xor_mlp.yaml"
    assert dlsem("train", cfg, "--epochs", "24", "--patience", "0", "--out", "full", *FAST).rc == 0
    gif = tmp_path / "full/plots/decision_boundary.gif"
    assert "plots/decision_boundary.gif" in read_summary(tmp_path / "full")["plots"]
    with Image.open(gif) as im:
        # the initial weights (epoch 0), epochs 1..20 every epoch, then every 2nd (24 epochs: stride
        # ceil(4/60) = 1), plus the final weights
        assert im.n_frames == 1 + 24 + 1
        im.seek(0)
        first = im.convert("RGB")
        im.seek(im.n_frames - 2)
        last = im.convert("RGB")
    assert first.size == last.size
    changed = ImageChops.difference(first, last).convert("L").point(lambda v: 255 if v > 30 else 0).histogram()[255]
    assert changed > 0.05 * first.size[0] * first.size[1]  # training moved the boundary visibly

    # a resumed run's animation still starts at epoch 0: the frames travel in last.pt
    assert dlsem("train", cfg, "--epochs", "10", "--patience", "0", "--out", "part", *FAST).rc == 0
    frames = torch.load(tmp_path / "part/last.pt", weights_only=True)["observers"]["boundary"]
    assert len(frames["frames"]) == 10 + 1 and frames["captions"][0].startswith("epoch 0")
    assert [c.split()[1] for c in frames["captions"]] == [str(e) for e in range(11)]
    assert not torch.equal(frames["frames"][0], frames["frames"][1])  # the first frame is before any step
    assert dlsem("train", "--resume", "part/last.pt", "--epochs", "24").rc == 0
    with Image.open(tmp_path / "part/plots/decision_boundary.gif") as a, Image.open(gif) as b:
        assert a.n_frames == b.n_frames
        for i in range(a.n_frames):
            a.seek(i)
            b.seek(i)
            assert ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None, i


def test_no_gif_for_images_or_when_turned_off(dlsem, tmp_path):
    cfg = CONFIGS / "xor_mlp.yaml"
    assert dlsem("train", cfg, "--epochs", "3", "--out", "off", "--set", "logging.boundary_gif=false", *FAST).rc == 0
    assert not (tmp_path / "off/plots/decision_boundary.gif").exists()
    assert (tmp_path / "off/plots/decision_boundary.png").exists()
    assert dlsem("train", "--epochs", "2", "--out", "digits", *FAST).rc == 0  # 64 inputs: no plane to draw
    assert not (tmp_path / "digits/plots/decision_boundary.gif").exists()


def test_curves_shade_the_patience_window_and_mark_the_restored_best(monkeypatch, tmp_path):
    import matplotlib.figure

    from dlseminar.summary import RunSummary
    from dlseminar.viz.curves import curves

    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    history = [{"epoch": e, "train/loss": 1 / e, "val/loss": abs(e - 5) + 1.0, "val/acc": 0.5 + 0.01 * min(e, 5)}
               for e in range(1, 9)]
    summary = {"best_epoch": 5, "stopped_early": True, "patience": 3, "restored_best": True, "monitor": "val/acc"}
    curves(tmp_path / "c.png", history, RunSummary(**summary))
    axes = figs[0].axes
    loss_ax, acc_ax = axes[0], axes[1]
    labels = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert "best epoch 5 (restored)" in labels
    assert "patience: 3 epochs without improvement" in labels
    span = [p for p in acc_ax.patches if p.get_label().startswith("patience")][0]
    assert (span.get_x(), span.get_x() + span.get_width()) == (5, 8)  # x in data units (axvspan's rectangle)
    star = [ln for ln in acc_ax.lines if ln.get_marker() == "*"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [5] and list(star[0].get_ydata()) == [pytest.approx(0.55)]
    assert not [ln for ln in loss_ax.lines if ln.get_marker() == "*"]  # val/loss is not the monitor here

    figs.clear()
    curves(tmp_path / "c.png", history, RunSummary(**{**summary, "stopped_early": False, "restored_best": False}))
    labels = [t.get_text() for t in figs[0].axes[1].get_legend().get_texts()]
    assert "best epoch 5" in labels and not any(t.startswith("patience") for t in labels)


def test_observer_state_is_kept_by_name(dlsem, tmp_path):
    """Turning TensorBoard on at a resume: health's recorded epochs still come back (by name, not position)."""
    common = ["--set", "logging.plots=false", *FAST]
    assert dlsem("train", "--epochs", "2", "--out", "run", "--set", "train.health=true", *common).rc == 0
    d = torch.load(tmp_path / "run/last.pt", weights_only=True)
    assert set(d["observers"]) == {"health"}
    r = dlsem("train", "--resume", "run/last.pt", "--epochs", "3", "--set", "logging.tensorboard=true")
    assert r.rc == 0, r
    assert read_summary(tmp_path / "run")["health"]["epochs"] == [1, 2, 3]
    assert len(_events(tmp_path / "run/tensorboard").Scalars("epoch")) == 1  # only the epoch it ran


def test_gif_for_three_classes_shows_each_predicted_class(dlsem, tmp_path):
    from PIL import Image

    import numpy as np

    from dlseminar.boundary import POINTS, SHADES, _palette

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    rows = ["x1,x2,label"]
    for c, (cx, cy) in enumerate(centres.tolist()):
        for x, y in (torch.randn(60, 2, generator=g) * 0.6 + torch.tensor([cx, cy])).tolist():
            rows.append(f"{x:.4f},{y:.4f},{'abc'[c]}")
    (tmp_path / "blobs.csv").write_text("\n".join(rows) + "\n")
    r = dlsem("train", "--data", "csv", "--set", "data.path=blobs.csv", "--model", "mlp", "--epochs", "8",
              "--lr", "0.05", "--out", "run", *FAST)
    assert r.rc == 0, r
    with Image.open(tmp_path / "run/plots/decision_boundary.gif") as im:
        assert im.n_frames == 1 + 8 + 1  # epoch 0, epochs 1..8, the final weights
        im.seek(im.n_frames - 1)
        area = np.asarray(im.convert("RGB").crop((0, 24, im.width, im.height))).reshape(-1, 3)  # below the caption
    pal = np.array(_palette(3)).reshape(-1, 3)
    colours = {tuple(c): i for i, c in enumerate(pal.tolist())}
    index = np.array([colours.get(tuple(px), -1) for px in area.tolist()])
    assert (index >= 0).all()  # a palette image: every pixel one of its colours
    per_class = [int(((index >= c * SHADES) & (index < (c + 1) * SHADES)).sum()) for c in range(3)]
    assert all(n > 0.1 * len(index) for n in per_class), per_class  # three predicted regions
    assert all((index == POINTS + c).any() for c in range(3))  # each class's points in its colour
