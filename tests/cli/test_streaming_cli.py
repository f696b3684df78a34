"""Streamed image data through the real CLI: a run that streams its files (data.in_memory: false) is the
run that decodes them into memory, metric for metric; a streamed run killed mid-epoch resumes to the
uninterrupted one bit for bit; signals and files that break while streaming end in one line.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import metrics_rows, read_summary
from dlseminar.config import resolve
from dlseminar.data.files import cpus
from dlseminar.engine import checkpoint as ckpt
from dlseminar.run import train

HERE = Path(__file__).resolve().parent


def make_folder(root: Path, per_class: int = 30) -> Path:
    """root/{a,b,c}/<i>.png|jpg: noisy images of mixed sizes, one bright channel per class."""
    rng = np.random.RandomState(0)
    for k, c in enumerate("abc"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.randint(0, 255, (18 + i % 4, 20, 3), np.uint8)
            a[..., k] = 200
            Image.fromarray(a).save(root / c / f"{i}.{'jpg' if i % 3 == 0 else 'png'}")
    return root


def make_seg(root: Path, n: int = 30) -> Path:
    rng = np.random.RandomState(1)
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.randint(0, 80, (20, 24, 3), np.uint8)
        m = np.zeros((20, 24), np.uint8)
        m[3:9 + i % 5, 4:12] = 1
        m[12:18, 10 + i % 6:20] = 2
        img[m == 1] = (200, 40, 40)
        img[m == 2] = (40, 200, 40)
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(m, "L").save(root / "masks" / f"im{i}.png")
    return root


FOLDER = ["--data", "folder", "--set", "data.path=pics", "--set", "data.image_size=16", "--model", "cnn",
          "--epochs", "2", "--batch-size", "8", "--set", "data.augment=hflip,crop", "--set", "model.dropout=0.2"]
SEG = ["--set", "data.name=seg_folder", "--set", "data.root=seg", "--set", "data.image_size=16", "--set",
       "model.name=unet", "--set", "model.depth=2", "--set", "model.base_width=4", "--epochs", "2", "--batch-size", "4",
       "--set", "data.augment=hflip,vflip,crop"]


def same_run(a: Path, b: Path) -> None:
    """metrics.csv (all but seconds) and the test metrics of two runs agree to 1e-6."""
    ra, rb = metrics_rows(a), metrics_rows(b)
    assert len(ra) == len(rb) and [r.keys() for r in ra] == [r.keys() for r in rb]
    for x, y in zip(ra, rb):
        assert {k: float(v) for k, v in x.items()} == pytest.approx({k: float(v) for k, v in y.items()}, abs=1e-6)
    ta, tb = read_summary(a)["test"], read_summary(b)["test"]
    assert ta and ta.keys() == tb.keys() and ta == pytest.approx(tb, abs=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_folder_run_equals_the_in_memory_run(dlsem, tmp_path, workers):
    make_folder(tmp_path / "pics")
    mem = dlsem("train", *FOLDER, "--set", "data.in_memory=true", "--out", "mem")
    st = dlsem("train", *FOLDER, "--set", "data.in_memory=false", "--set", f"data.num_workers={workers}", "--out", "st")
    assert mem.rc == 0 and st.rc == 0, st
    same_run(tmp_path / "mem", tmp_path / "st")
    # the plots read a few streamed images: the same figures are drawn
    assert read_summary(tmp_path / "st")["plots"] == read_summary(tmp_path / "mem")["plots"]
    assert "Traceback" not in st.err and "data.in_memory: auto" not in st.err
    if workers == 0:  # predict --hierarchy reads its patches from the training files of a streamed run too
        r = dlsem("predict", tmp_path / "st" / "best.pt", tmp_path / "pics" / "a", "--hierarchy", "--out", "pred")
        assert r.rc == 0, r
        assert (tmp_path / "pred" / "features_hierarchy.png").stat().st_size > 0


def test_streamed_seg_folder_run_equals_the_in_memory_run(dlsem, tmp_path):
    make_seg(tmp_path / "seg")
    mem = dlsem("train", *SEG, "--set", "data.in_memory=true", "--out", "mem")
    st = dlsem("train", *SEG, "--set", "data.in_memory=false", "--out", "st")
    assert mem.rc == 0 and st.rc == 0, st
    same_run(tmp_path / "mem", tmp_path / "st")
    assert "plots/predictions.png" in read_summary(tmp_path / "st")["plots"]
    ev = dlsem("eval", "st/best.pt", "--json")  # eval of a streamed run: the checkpoint's stats, streamed again
    assert ev.rc == 0 and json.loads(ev.out) == pytest.approx(read_summary(tmp_path / "st")["test"], abs=1e-6), ev


def test_streamed_coco_run_equals_the_in_memory_run(dlsem, tmp_path):
    from dlseminar.datasets.detection import render_det_scene

    rng = np.random.RandomState(0)
    (tmp_path / "det").mkdir()
    images, anns = [], []
    for i in range(20):
        a, t = render_det_scene(rng, rng.randint(0, 2, 1 + i % 2), 40 + 8 * (i % 2), 3, 0.05)  # two sizes
        Image.fromarray(a).save(tmp_path / "det" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png"})
        for (x1, y1, x2, y2), lab in zip(t["boxes"].tolist(), t["labels"].tolist()):
            anns.append({"id": len(anns), "image_id": i, "category_id": lab, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (tmp_path / "det" / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]}))
    args = ["train", "--set", "data.name=coco", "--set", "data.path=det/ann.json", "--set", "model.name=fasterrcnn",
            "--set", "model.widths=[8,16]", "--set", "data.augment=hflip", "--epochs", "1", "--batch-size", "4",
            "--set", "logging.plots=false"]
    mem = dlsem(*args, "--set", "data.in_memory=true", "--out", "mem")
    st = dlsem(*args, "--set", "data.in_memory=false", "--out", "st")
    assert mem.rc == 0 and st.rc == 0, st
    same_run(tmp_path / "mem", tmp_path / "st")


def test_auto_streams_a_set_above_its_budget(dlsem, tmp_path, monkeypatch):
    from dlseminar import memory

    make_folder(tmp_path / "pics", per_class=8)
    monkeypatch.setattr(memory, "RAM_SHARE", 1e-9)  # the images' budget only: the model's checks see the real RAM
    r = dlsem("train", *FOLDER, "--epochs", "1", "--set", "logging.plots=false", "--out", "run")
    assert r.rc == 0, r
    assert "note: folder: 24 images at 3x16x16 take about 36.9 KB decoded, more than 0% of the" in r.err
    workers = "2 worker processes" if cpus() > 1 else "1 worker process"
    assert f"streamed from the files, decoded per batch by {workers} (data.in_memory: auto)" in r.err


@pytest.mark.parametrize("value, words", [
    ("data.num_workers=-1", "data.num_workers must be >= 0 (got -1)"),
    ("data.in_memory=maybe", "data.in_memory must be one of auto, true, false (got 'maybe')"),
])
def test_bad_streaming_settings_are_one_line(dlsem, tmp_path, value, words):
    make_folder(tmp_path / "pics", per_class=3)
    r = dlsem("train", *FOLDER, "--set", value, "--out", "run")
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert r.rc == 2 and len(errors) == 1 and words in errors[0], r
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("skip", [False, True])
def test_an_image_that_breaks_during_training_is_one_line_or_skipped(dlsem, tmp_path, monkeypatch, skip):
    """The file is fine when the run starts (its scan) and broken once training runs: one error line naming
    it, exit 2 (or, with data.skip_bad, a note and the run goes on)."""
    from dlseminar.engine.trainer import Trainer

    pics = make_folder(tmp_path / "pics", per_class=6)
    victim = pics / "b" / "4.png"
    named = str(victim.relative_to(tmp_path))  # as data.path gives it
    fit = Trainer.fit

    def breaking_fit(self, *a, **kw):
        victim.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        return fit(self, *a, **kw)

    monkeypatch.setattr(Trainer, "fit", breaking_fit)
    r = dlsem("train", *FOLDER, "--set", "data.in_memory=false", "--set", f"data.skip_bad={str(skip).lower()}",
              "--set", "logging.plots=false", "--out", "run")
    assert "Traceback" not in r.out + r.err
    if skip:
        assert r.rc == 0 and r.err.count(f"became unreadable while streaming: cannot read image '{named}'") == 1, r
    else:
        errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
        assert r.rc == 2 and len(errors) == 1, r
        assert named in errors[0] and "could be read when the run started" in errors[0]


# --------------------------------------------------------------------------- kill, resume, signals

def streamed_sets(pics: Path) -> list[str]:
    # 54 training images in batches of 8: 7 steps an epoch; a checkpoint every 2 steps, mid-epoch
    return [f"data.path={pics}", "data.name=folder", "data.image_size=16", "model.name=cnn", "model.dropout=0.3",
            "data.augment=hflip,crop", "train.batch_size=8", "train.epochs=2", "early_stop.patience=0",
            "data.in_memory=false", "data.num_workers=2", "checkpoint.every_n_steps=2", "checkpoint.min_interval_s=0",
            "checkpoint.max_overhead=0", "logging.plots=false"]


@pytest.fixture(scope="module")
def streamed_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    sets = streamed_sets(make_folder(root / "pics"))
    run_dir, summary = train(resolve(sets=sets + [f"out={root / 'ref'}"]))
    return sets, run_dir, summary


@pytest.mark.parametrize("point", ["step:5", "step:11"])
def test_streamed_run_killed_mid_epoch_resumes_bit_identical(streamed_reference, tmp_path, point):
    sets, ref_dir, ref_summary = streamed_reference
    args = ["train", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path / "run")]
    p = subprocess.run([sys.executable, str(HERE / "kill_runner.py"), point, *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == -9, p.stderr[-2000:]
    last = tmp_path / "run" / "last.pt"
    assert ckpt.load(last)["batch_in_epoch"] > 0  # the kill came mid-epoch, after a step-level checkpoint
    _, summary = train(None, resume=str(last))
    a, b = (torch.load(d / "last.pt", weights_only=True) for d in (ref_dir, tmp_path / "run"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert metrics_rows(tmp_path / "run") == metrics_rows(ref_dir)
    assert summary.test == ref_summary.test


@pytest.mark.parametrize("sig, rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_whole_process_group_stops_a_streamed_run_cleanly(tmp_path, sig, rc):
    """Ctrl-C reaches the workers too (the terminal signals the foreground group), as does a batch system's
    SIGTERM: the training process writes last.pt and exits; no worker prints a traceback or stays behind."""
    pics = make_folder(tmp_path / "pics")
    sets = [s for s in streamed_sets(pics) if not s.startswith(("train.epochs", "checkpoint.every"))] + ["train.epochs=200"]
    p = subprocess.Popen([sys.executable, "-m", "dlseminar", "train", *[a for s in sets for a in ("--set", s)],
                          "--out", "run"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "metrics.csv").exists():
        time.sleep(0.05)  # an epoch has ended: the workers are running
    os.killpg(p.pid, sig)
    out, err = p.communicate(timeout=60)  # returns once every process holding the pipes (the workers) is gone
    assert p.returncode == rc and "Traceback" not in out + err, err
    assert "resume with: dlsem train --resume" in err
    assert ckpt.load(tmp_path / "run" / "last.pt")["epoch"] >= 1
