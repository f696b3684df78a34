"""The CLI on detection: a COCO dataset written here (JSON + images, one image without objects)
trains, evaluates (per-class AP table) and predicts (table, JSON, annotated images); a bad
annotation is one `error:` line and exit 2."""
from __future__ import annotations

import json
import math

import numpy as np

from conftest import read_summary

NAMES = {1: "circle", 5: "square"}  # non-contiguous category ids, as labelling tools export them


def write_coco(folder, n=12, size=64):
    """n images of 1-2 shapes each (the last one without any) and their COCO JSON."""
    from PIL import Image, ImageDraw

    from dlseminar.datasets.images import draw_shape

    rng = np.random.RandomState(0)
    (folder / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.randint(0, 80, 3)))
        draw = ImageDraw.Draw(im)
        for j in range(0 if i == n - 1 else 1 + i % 2):
            cat = (1, 5)[(i + j) % 2]
            r, cx, cy = 9, 16 + 30 * j, 16 + 28 * (i % 2)
            draw_shape(draw, NAMES[cat], cx, cy, r, 0.0, (230, 230, 60))
            anns.append({"id": 100 + len(anns), "image_id": i + 1, "category_id": cat, "iscrowd": 0,
                         "bbox": [cx - r * 1.2, cy - r * 1.2, 2.4 * r, 2.4 * r]})
        im.save(folder / "images" / f"img{i}.png")
        images.append({"id": i + 1, "file_name": f"img{i}.png", "width": size, "height": size})
    d = {"images": images, "annotations": anns, "categories": [{"id": k, "name": v} for k, v in NAMES.items()]}
    (folder / "ann.json").write_text(json.dumps(d))
    return d


TINY = ("--data", "coco", "--set", "data.path=ds/ann.json", "--model", "fasterrcnn", "--set", "model.widths=[8,16]",
        "--set", "data.val_split=0.25", "--set", "data.test_split=0.25", "--batch-size", "3")


def test_coco_dataset_trains_evaluates_and_predicts(dlsem, tmp_path):
    write_coco(tmp_path / "ds")
    r = dlsem("train", *TINY, "--epochs", "1", "--out", "run")
    assert r.rc == 0, r
    s = read_summary(tmp_path / "run")
    assert s["task"] == "detection" and s["monitor"] == "val/map50" and s["loss"] == "rcnn"
    assert set(s["test"]) == {"test/map", "test/map50", "test/map75", "test/recall"}
    assert {"plots/detections.png", "plots/stages.png", "plots/curves.png"} <= set(s["plots"])
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/rpn_objectness", "train/rpn_box", "train/cls", "train/box", "val/map50"} <= set(header)

    e = dlsem("eval", "run/best.pt", "--json")
    assert e.rc == 0, e
    got = json.loads(e.out)
    assert got.keys() == s["test"].keys()
    for k, v in got.items():  # the same data, stats and weights from the checkpoint: the same numbers
        assert (math.isnan(v) and math.isnan(s["test"][k])) or v == s["test"][k], k
    t = dlsem("eval", "run/best.pt")
    assert t.rc == 0, t
    assert "AP@0.5" in t.out and "circle" in t.out and "square" in t.out and "objects" in t.out, t  # per class

    p = dlsem("predict", "run/best.pt", "ds/images/img0.png", "ds/images/img11.png", "--json", "--out", "preds",
              "--score-threshold", "0.01")
    assert p.rc == 0, p
    res = json.loads(p.out)
    assert [x["image"] for x in res] == ["ds/images/img0.png", "ds/images/img11.png"]
    for x in res:
        assert (tmp_path / x["annotated"]).is_file() and x["annotated"].endswith("_boxes.png")
        for d in x["detections"]:
            assert d["class"] in NAMES.values() and d["score"] >= 0.01 and len(d["box"]) == 4
    q = dlsem("predict", "run/best.pt", "ds/images/img1.png", "--score-threshold", "1.0")
    assert q.rc == 0 and "img1.png" in q.out, q  # the table, with no detection above a score of 1


def test_bad_annotation_is_one_error_line(dlsem, tmp_path):
    d = write_coco(tmp_path / "ds")
    d["annotations"].append({"id": 999, "image_id": 3, "category_id": 5, "bbox": [10, 10, 0, 8]})
    (tmp_path / "ds" / "ann.json").write_text(json.dumps(d))
    r = dlsem("train", *TINY, "--epochs", "1", "--out", "run")
    assert r.rc == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.err, r
    assert "annotation 999" in lines[0] and "ann.json" in lines[0] and "img2.png" in lines[0], r
    assert not (tmp_path / "run").exists()


def test_models_show_explains_the_stages_and_mismatches_exit_2(dlsem):
    r = dlsem("models", "show", "fasterrcnn", "--input", "3x64x64", "--set", "model.widths=[8,16]")
    assert r.rc == 0, r
    for words in ("1 backbone", "2 RPN", "3 RoI align", "4 box head", "5 output", "roi_heads.box_predictor"):
        assert words in r.out, r
    r = dlsem("train", "--data", "shapes", "--model", "fasterrcnn", "--epochs", "1")
    assert r.rc == 2 and "gives detections" in r.err and "Traceback" not in r.err, r
