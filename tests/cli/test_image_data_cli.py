"""The CLI on image files: `--data folder` (your own images), `--data mnist` offline, `dlsem predict`."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import read_summary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_image_datasets import make_mnist  # noqa: E402  (real idx-ubyte writer)

FAST = ("--set", "logging.plots=false")


def error_lines(r) -> list[str]:
    assert "Traceback" not in r.err, r
    return [ln for ln in r.err.splitlines() if ln.startswith("error:")]


def digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_folder(root: Path, per_class: int = 30) -> None:
    """3 classes, mixed sizes and modes; class = brightness, so a small model can learn it."""
    from PIL import Image

    rng = np.random.RandomState(0)
    modes = ["L", "RGB", "RGBA", "P"]
    sizes = [(40, 25), (97, 131), (20, 20), (33, 47)]
    for k, cls in enumerate(["dark", "mid", "bright"]):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            a = np.clip(rng.normal(40 + 85 * k, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            im = Image.fromarray(a, "RGB")
            mode = modes[(i + k) % len(modes)]
            im = im.convert("P") if mode == "P" else im.convert(mode)
            im.save(root / cls / f"{cls}_{i:02d}.png")
    Image.new("RGB", (10, 10)).save(root / "README.png")  # loose file at the top: ignored with a note


def test_folder_trains_evaluates_and_leaves_files_alone(dlsem, tmp_path):
    pics = tmp_path / "pics"
    make_folder(pics)
    before = digest(pics)
    r = dlsem("train", "--data", "folder", "--set", f"data.path={pics}", "--set", "data.image_size=16",
              "--model", "mlp", "--epochs", "2", "--out", "run")
    assert r.rc == 0, r
    assert "ignored 1 file at the top of" in r.err and "README.png" in r.err, r
    s = read_summary(tmp_path / "run")
    assert s["dataset"] == "folder" and s["task"] == "classification" and s["epochs_run"] == 2
    assert "test/acc" in s["test"] and (tmp_path / "run" / "plots" / "curves.png").is_file()
    e = dlsem("eval", "run/best.pt", "--json")
    assert e.rc == 0, e
    assert json.loads(e.out) == s["test"]
    assert digest(pics) == before


def test_folder_bad_images_stop_with_one_error_or_are_skipped(dlsem, tmp_path):
    pics = tmp_path / "pics"
    make_folder(pics, per_class=12)
    (pics / "dark" / "empty.png").write_bytes(b"")
    (pics / "mid" / "corrupt.png").write_bytes(np.random.RandomState(1).bytes(300))
    before = digest(pics)
    args = ("train", "--data", "folder", "--set", f"data.path={pics}", "--set", "data.image_size=8",
            "--model", "mlp", "--epochs", "1", *FAST)
    r = dlsem(*args, "--out", "run1")
    assert r.rc == 2, r
    errs = error_lines(r)
    assert len(errs) == 1 and str(pics / "dark" / "empty.png") in errs[0], r
    r = dlsem(*args, "--set", "data.skip_bad=true", "--out", "run2")
    assert r.rc == 0, r
    assert f"note: skipped 2 unreadable images (first: {pics / 'dark' / 'empty.png'})" in r.err, r
    assert digest(pics) == before


def test_folder_without_path_is_one_error_line(dlsem):
    r = dlsem("train", "--data", "folder", "--epochs", "1", *FAST)
    assert r.rc == 2 and error_lines(r) == ["error: dataset folder needs data.path "
                                            "(a folder with one sub-folder of images per class)"], r


def test_mnist_from_idx_files_offline(dlsem, tmp_path):
    make_mnist(tmp_path / "data", n_train=60, n_test=20)
    r = dlsem("train", "--data", "mnist", "--model", "mlp", "--epochs", "1", "--out", "run", *FAST)
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["dataset"] == "mnist"
    e = dlsem("eval", "run/best.pt", "--json")
    assert e.rc == 0 and json.loads(e.out) == s["test"], e


@pytest.mark.parametrize("name,where", [("mnist", "data/MNIST/raw"), ("cifar10", "data/cifar-10-batches-py")])
def test_missing_download_data_is_one_error_line(dlsem, tmp_path, name, where):
    r = dlsem("train", "--data", name, "--epochs", "1", *FAST)
    assert r.rc == 2, r
    errs = error_lines(r)
    assert len(errs) == 1 and errs[0].startswith(f"error: {name} not found under {where}"), r
    assert "--set data.download=true" in errs[0]
    assert not (tmp_path / "data").exists()  # no download attempted, nothing created


def test_predict_on_any_image_files(dlsem, tmp_path):
    from PIL import Image

    r = dlsem("train", "--data", "shapes", "--model", "mlp", "--epochs", "1", "--set", "data.n_samples=80",
              "--out", "run", *FAST)
    assert r.rc == 0, r
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (427, 640, 3), dtype=np.uint8)).save(tmp_path / "big.jpg", quality=80)
    Image.fromarray(rng.randint(0, 256, (50, 30), dtype=np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(rng.randint(0, 256, (24, 64, 4), dtype=np.uint8), "RGBA").save(tmp_path / "rgba.png")
    p = dlsem("predict", "run/best.pt", "big.jpg", "gray.png", "rgba.png", "--json")
    assert p.rc == 0, p
    res = json.loads(p.out)
    assert [Path(x["image"]).name for x in res] == ["big.jpg", "gray.png", "rgba.png"]
    shapes = {"circle", "square", "triangle", "star"}
    for x in res:
        probs = [t["prob"] for t in x["top"]]
        assert len(probs) == 4 and {t["class"] for t in x["top"]} == shapes
        assert probs == sorted(probs, reverse=True) and all(0 <= q <= 1 for q in probs)
        assert sum(probs) <= 1 + 1e-5 and sum(probs) > 0.99  # all 4 classes shown: a full softmax

    o = dlsem("predict", "run/best.pt", "big.jpg", "gray.png", "rgba.png", "--top-k", "2", "--json", "--out", "outdir")
    assert o.rc == 0, o
    res = json.loads(o.out)
    assert all(len(x["top"]) == 2 for x in res)
    pngs = sorted((tmp_path / "outdir").glob("*.png"))
    assert len(pngs) == 3 and all((tmp_path / x["annotated"]).is_file() for x in res)
    for f in pngs:
        with Image.open(f) as im:
            assert im.format == "PNG" and im.size[0] > 32

    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(100))
    b = dlsem("predict", "run/best.pt", "big.jpg", "broken.png", "--json")
    assert b.rc == 2 and b.out == "", b
    errs = error_lines(b)
    assert len(errs) == 1 and "broken.png" in errs[0], b
