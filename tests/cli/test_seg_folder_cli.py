"""The CLI on your own segmentation folder: train a U-Net, `dlsem eval` (per-class IoU), `dlsem predict` masks."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import read_summary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_seg_folder import make_seg_folder, save_mask  # noqa: E402  (real PNG image/mask writers)

UNET = ("--set", "data.name=seg_folder", "--set", "model.name=unet", "--set", "model.depth=2",
        "--set", "model.base_width=4", "--epochs", "1")


def error_lines(r) -> list[str]:
    assert "Traceback" not in r.err, r
    return [ln for ln in r.err.splitlines() if ln.startswith("error:")]


def digest(root: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_seg_folder_trains_evaluates_and_predicts_masks_at_the_input_size(dlsem, tmp_path):
    data = tmp_path / "segdata"
    make_seg_folder(data, n=10, size=(131, 97))  # 97 wide, 131 high: not a multiple of 2**depth
    (data / "classes.txt").write_text("background\nbox\ndisc\n")
    before = digest(data)
    r = dlsem("train", *UNET, "--set", f"data.root={data}", "--out", "run")
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["dataset"] == "seg_folder" and s["task"] == "segmentation" and s["monitor"] == "val/miou"
    assert "plots/predictions.png" in s["plots"] and (tmp_path / "run" / "plots" / "predictions.png").stat().st_size > 0

    e = dlsem("eval", "run/best.pt")
    assert e.rc == 0, e
    assert "iou" in e.out and "background" in e.out and "box" in e.out and "disc" in e.out, e

    img = np.asarray(Image.open(data / "images" / "im0.png"))
    Image.fromarray(img).save(tmp_path / "photo.png")
    Image.fromarray(img[:77, :50]).convert("L").save(tmp_path / "small.png")  # another size and mode
    p = dlsem("predict", "run/best.pt", "photo.png", "small.png", "--out", "P", "--json")
    assert p.rc == 0, p
    res = json.loads(p.out)
    assert [(x["width"], x["height"]) for x in res] == [(97, 131), (50, 77)]
    for x, stem, size in zip(res, ("photo", "small"), ((97, 131), (50, 77))):
        assert x["mask"] == str(Path("P") / f"{stem}_mask.png") and x["overlay"] == str(Path("P") / f"{stem}_overlay.png")
        assert abs(sum(c["share"] for c in x["classes"]) - 1) < 1e-6
        assert {c["class"] for c in x["classes"]} <= {"background", "box", "disc"}
        with Image.open(tmp_path / x["mask"]) as m:
            assert m.format == "PNG" and m.mode in ("L", "P") and m.size == size  # exactly the input's W x H
            assert set(np.unique(np.asarray(m)).tolist()) <= {0, 1, 2}  # class indices, not colours
        with Image.open(tmp_path / x["overlay"]) as o:
            assert o.mode == "RGB" and o.size == size

    t = dlsem("predict", "run/best.pt", "small.png")  # no --out: the table only
    assert t.rc == 0 and "50x77" in t.out and "pixel share" in t.out and "overlay" not in t.out, t
    assert sorted(p.name for p in (tmp_path / "P").iterdir()) == ["photo_mask.png", "photo_overlay.png",
                                                                   "small_mask.png", "small_overlay.png"]
    assert digest(data) == before  # the user's files are only read


def test_seg_folder_bad_mask_and_mixed_sizes_are_one_error_line(dlsem, tmp_path):
    data = tmp_path / "segdata"
    make_seg_folder(data, n=6, size=(24, 20))
    bad = np.zeros((24, 20), np.uint8)
    bad[3, 3] = 9
    save_mask(data / "masks" / "im4.png", bad)
    r = dlsem("train", *UNET, "--set", f"data.root={data}", "--set", "data.num_classes=3", "--set", "logging.plots=false")
    assert r.rc == 2 and r.out == "", r
    errs = error_lines(r)
    assert len(errs) == 1 and "im4.png' has value 9 but data.num_classes gives 3 classes" in errs[0], r
    assert not (tmp_path / "runs").exists()

    save_mask(data / "masks" / "im4.png", np.zeros((24, 20), np.uint8))
    Image.new("RGB", (33, 30)).save(data / "images" / "im5.png")
    save_mask(data / "masks" / "im5.png", np.zeros((30, 33), np.uint8))
    r = dlsem("train", *UNET, "--set", f"data.root={data}", "--set", "logging.plots=false")
    assert r.rc == 2, r
    errs = error_lines(r)
    assert len(errs) == 1 and "images differ in size" in errs[0] and "data.image_size" in errs[0], r
