"""Detection: shapes_det, the coco reader, the loader and augmentation, the detector, mAP against
pycocotools' own evaluation of JSON files, and the Trainer's loss-part logs."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from dlseminar import catalog, config
from dlseminar.datasets import build_data
from dlseminar.data import SplitSpec
from dlseminar.datasets.detection import shapes_det
from dlseminar.tasks.detection.data import DetAugment, DetImages, target
from dlseminar.errors import ConfigError, DataError
from dlseminar.models import build_model
from dlseminar.registry import DATASETS, MODELS
from dlseminar.tasks.detection.task import DetMetrics

catalog.load_all()


def det_cfg(*sets):
    return config.resolve(sets=["data.name=shapes_det", "data.n_samples=20", "data.image_size=64",
                                "data.num_classes=3", *sets])


# --------------------------------------------------------------------------- shapes_det


def test_shapes_det_is_deterministic_by_seed():
    a, b, c = shapes_det(seed=3, n_samples=12, image_size=64), shapes_det(seed=3, n_samples=12, image_size=64), \
        shapes_det(seed=4, n_samples=12, image_size=64)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    for s, t in zip(a.targets, b.targets):
        assert torch.equal(s["boxes"], t["boxes"]) and torch.equal(s["labels"], t["labels"])
    assert a.images.shape == (12, 3, 64, 64) and a.images.dtype == torch.uint8


def test_shapes_det_boxes_are_the_drawn_shapes_and_empty_images_occur():
    d = shapes_det(seed=0, n_samples=40, image_size=64, num_classes=4, noise=0.0)
    counts = [len(t["labels"]) for t in d.targets]
    assert min(counts) == 0 and max(counts) >= 3  # negatives (no object) are part of the data
    for x, t in zip(d.images, d.targets):
        assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
        assert t["boxes"].shape == (len(t["labels"]), 4)
        if len(t["labels"]):
            assert 1 <= int(t["labels"].min()) and int(t["labels"].max()) <= 4  # 0 is the background
            b = t["boxes"]
            assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 64).all()
            assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        # without noise the background is one colour: the shapes' pixels are exactly the boxes' contents
        colours, n = x.flatten(1).unique(dim=1, return_counts=True)
        bg = colours[:, n.argmax()]
        fg = (x != bg[:, None, None]).any(0)  # (H, W)
        covered = torch.zeros_like(fg)
        for x1, y1, x2, y2 in t["boxes"].int().tolist():
            covered[y1:y2, x1:x2] = True
            ys, xs = fg[y1:y2, x1:x2].nonzero(as_tuple=True)
            assert (xs.min() + x1, ys.min() + y1, xs.max() + x1 + 1, ys.max() + y1 + 1) == (x1, y1, x2, y2)
        assert not (fg & ~covered).any()


def test_shapes_det_splits_and_info():
    d = build_data(det_cfg())
    assert d.info.kind == "detection" and d.info.num_classes == 3
    assert d.info.class_names == ["circle", "square", "triangle"] and d.info.in_shape == (3, 64, 64)
    assert {len(d.splits[s][1]) for s in ("val", "test")} == {4} and len(d.splits["train"][1]) == 12
    assert set(d.stats) == {"mean", "std", "scale"}
    with pytest.raises(ConfigError, match="is for detection"):
        build_data(det_cfg("task=classification"))


# --------------------------------------------------------------------------- loader and augmentation


def test_loader_yields_lists_and_shuffles_by_seed_and_epoch():
    d = build_data(det_cfg())
    ld = d.loader("train", 5, shuffle=True, seed=0, device=torch.device("cpu"))
    assert len(ld) == 3  # 12 images: 5 + 5 + 2
    folded = d.loader("train", 11, shuffle=True, seed=0, device=torch.device("cpu"))
    assert len(folded) == 1 and [len(x) for x, _ in folded] == [12]  # a last batch of one image is folded
    batches = list(ld)
    xs, ts = batches[0]
    assert isinstance(xs, list) and isinstance(ts, list) and len(xs) == len(ts) == 5
    assert xs[0].dtype == torch.float32 and xs[0].shape == (3, 64, 64) and set(ts[0]) == {"boxes", "labels"}
    again = [b[1][0]["boxes"] for b in ld]
    assert all(torch.equal(a, b[1][0]["boxes"]) for a, b in zip(again, batches))  # same epoch, same order
    ld.set_epoch(1)
    order1 = [t["boxes"].sum().item() for _, tt in ld for t in tt]
    ld.set_epoch(2)
    order2 = [t["boxes"].sum().item() for _, tt in ld for t in tt]
    assert sorted(order1) == sorted(order2) and order1 != order2
    ev = d.loader("val", 1024, shuffle=False, seed=0, device=torch.device("cpu"))
    assert sum(len(x) for x, _ in ev) == 4
    # two processes (DDP) each get their part of every global batch, together the same batches
    parts = [[tt for _, tt in d.loader("train", 5, True, 0, torch.device("cpu")).shard(r, 2)] for r in (0, 1)]
    assert [[t["boxes"].sum().item() for t in a + b] for a, b in zip(*parts)] == \
        [[t["boxes"].sum().item() for t in tt] for _, tt in batches]


def test_flip_augmentation_moves_the_boxes_with_the_image():
    x = torch.zeros(3, 20, 30, dtype=torch.uint8)
    x[:, 2:8, 3:10] = 200  # an object at x 3..10, y 2..8 (each flip gives a different image)
    t = target([[3, 2, 10, 8]], [1])
    aug = DetAugment(["hflip", "vflip"], seed=0)
    seen = set()
    for batch in range(12):
        (y,), (u,) = aug([x], [t], epoch=1, batch=batch)
        flips = [(h, v) for h in (False, True) for v in (False, True)
                 if torch.equal(y, x.flip(-1) if h and not v else x.flip(-2) if v and not h else
                                x.flip(-1, -2) if h and v else x)]
        assert len(flips) == 1
        h, v = flips[0]
        x1, y1, x2, y2 = 3.0, 2.0, 10.0, 8.0
        if h:
            x1, x2 = 30 - x2, 30 - x1
        if v:
            y1, y2 = 20 - y2, 20 - y1
        assert u["boxes"].tolist() == [[x1, y1, x2, y2]] and u["labels"].tolist() == [1]
        seen.add((h, v))
    assert len(seen) >= 3  # flips are drawn at random (per batch seed)
    (y1,), _ = aug([x], [t], epoch=1, batch=5)
    (y2,), _ = aug([x], [t], epoch=1, batch=5)
    assert torch.equal(y1, y2)  # the same batch draws the same flips (exact resume)


def test_crop_augmentation_keeps_boxes_inside_and_empty_targets_work():
    x = torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
    aug = DetAugment(["crop"], seed=1)
    for batch in range(5):
        (y, e), (u, v) = aug([x, x], [target([[0, 0, 32, 32]], [2]), target([], [])], epoch=0, batch=batch)
        assert y.shape == (3, 32, 32) and u["boxes"].shape == (1, 4) and v["boxes"].shape == (0, 4)
        assert (u["boxes"] >= 0).all() and (u["boxes"] <= 32).all()


# --------------------------------------------------------------------------- mAP = pycocotools on JSON files


def _fake_split(rng):
    """Ground truth for 6 images (one with no object) and noisy predictions: jittered true boxes,
    wrong classes, duplicates and false positives (also on the empty image)."""
    gts, dts = [], []
    for i in range(6):
        k = 0 if i == 2 else int(rng.randint(1, 5))
        xy = rng.uniform(0, 80, (k, 2))
        wh = rng.uniform(8, 40, (k, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.randint(1, 3, k)  # classes 1 and 2 only: class 3 has no ground truth anywhere
        gts.append(target(boxes, labels))
        pb = boxes + rng.normal(0, 3, boxes.shape)
        pl = np.where(rng.rand(k) < 0.8, labels, rng.randint(1, 4, k))
        fp = rng.uniform(0, 90, (2, 2))
        pb = np.concatenate([pb, pb[:1] + 1, np.concatenate([fp, fp + 10], 1)])[: k + 3]
        pl = np.concatenate([pl, pl[:1], rng.randint(1, 4, 2)])[: k + 3]
        scores = rng.uniform(0.05, 1, len(pl))
        dts.append({"boxes": torch.tensor(pb, dtype=torch.float32), "labels": torch.tensor(pl, dtype=torch.int64),
                    "scores": torch.tensor(scores, dtype=torch.float32)})
    return gts, dts


def _reference(tmp_path, gts, dts, names):
    """COCOeval run the usual way: a ground-truth JSON file, a results JSON file, COCO.loadRes."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, res = [], [], []
    for i, (g, d) in enumerate(zip(gts, dts)):
        images.append({"id": 100 + i, "file_name": f"{i}.png", "width": 128, "height": 128})
        for (x1, y1, x2, y2), l in zip(g["boxes"].tolist(), g["labels"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": l, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        for (x1, y1, x2, y2), l, s in zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist()):
            res.append({"image_id": 100 + i, "category_id": l, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (tmp_path / "res.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
        e = COCOeval(gt, gt.loadRes(str(tmp_path / "res.json")), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


@pytest.mark.parametrize("seed", [0, 1])
def test_map_equals_the_coco_reference_evaluation(tmp_path, seed):
    names = ["circle", "square", "star"]
    gts, dts = _fake_split(np.random.RandomState(seed))
    m = DetMetrics(3, names)
    m.update(dts[:4], gts[:4])  # in two batches, as the evaluation loop does
    m.update(dts[4:], gts[4:])
    ours = m.compute()
    ref = _reference(tmp_path, gts, dts, names)
    assert 0 < ours["map"] < ours["map50"] < 1  # a meaningful case, not all zeros or ones
    for key, i in (("map", 0), ("map50", 1), ("map75", 2), ("recall", 8)):
        assert abs(ours[key] - ref.stats[i]) < 1e-6, key
    per_class = m.per_class()
    prec = ref.eval["precision"]
    for k, row in enumerate(per_class):
        p = prec[:, :, k, 0, -1]
        if (p > -1).any():
            assert abs(row["ap"] - p[p > -1].mean()) < 1e-6 and abs(row["ap50"] - prec[0, :, k, 0, -1].mean()) < 1e-6
        else:
            assert math.isnan(row["ap"]) and row["objects"] == 0  # class 3: no ground truth, no AP
    assert [r["objects"] for r in per_class] == [int(sum((g["labels"] == k).sum() for g in gts)) for k in (1, 2, 3)]


def test_map_without_any_detection_is_zero_and_perfect_predictions_score_one():
    gts, _ = _fake_split(np.random.RandomState(2))
    none = DetMetrics(3, ["a", "b", "c"])
    none.update([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
                 for _ in gts], gts)
    assert none.compute()["map50"] == 0.0
    perfect = DetMetrics(3, ["a", "b", "c"])
    perfect.update([{**g, "scores": torch.ones(len(g["labels"]))} for g in gts], gts)
    r = perfect.compute()
    assert r["map"] == pytest.approx(1.0) and r["map50"] == pytest.approx(1.0) and r["recall"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- coco reader


def _image(path, size=(40, 30)):
    from PIL import Image

    Image.new("RGB", size, (200, 30, 30)).save(path)


def _coco(tmp_path, annotations, images=None, categories=None, write=True):
    images = images or [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"},
                        {"id": 3, "file_name": "empty.png"}]
    if write:
        for im in images:
            _image(tmp_path / im["file_name"])
    d = {"images": images, "annotations": annotations,
         "categories": categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}
    (tmp_path / "ann.json").write_text(json.dumps(d))
    return tmp_path / "ann.json"


def coco(path, **kw):
    return DATASETS.get("coco").fn(path=str(path), **kw)


GOOD = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [5, 5, 10, 8]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 20, 20, 20]},  # reaches outside 40x30: clipped
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 4, 4], "iscrowd": 0}]


def test_coco_maps_categories_clips_boxes_and_keeps_empty_images(tmp_path, capsys):
    d = coco(_coco(tmp_path, GOOD))
    assert d.class_names == ["cat", "dog"]  # category ids 3, 7 -> labels 1, 2, sorted by id
    assert d.images.shape == (3, 3, 30, 40)
    assert d.targets[0]["labels"].tolist() == [2, 1]
    assert d.targets[0]["boxes"].tolist() == [[5, 5, 15, 13], [30, 20, 40, 30]]
    assert d.targets[2]["boxes"].shape == (0, 4)  # empty.png: a negative image
    assert "1 box reaching outside the image clipped" in capsys.readouterr().err
    r = coco(_coco(tmp_path, GOOD), image_size=20)  # resized, boxes scaled with the image
    assert r.images.shape == (3, 3, 20, 20)
    assert r.targets[0]["boxes"][0].tolist() == pytest.approx([2.5, 5 * 20 / 30, 7.5, 13 * 20 / 30])


@pytest.mark.parametrize("bad, words", [
    ({"id": 41, "image_id": 2, "category_id": 3, "bbox": [5, 5, 0, 4]}, ["annotation 41", "'b.png'", "degenerate box"]),
    ({"id": 42, "image_id": 2, "category_id": 3, "bbox": [50, 5, 4, 4]}, ["annotation 42", "degenerate box"]),
    ({"id": 43, "image_id": 2, "category_id": 9, "bbox": [5, 5, 4, 4]}, ["annotation 43", "unknown category_id 9"]),
    ({"id": 44, "image_id": 99, "category_id": 3, "bbox": [5, 5, 4, 4]}, ["annotation 44", "unknown image_id 99"]),
    ({"id": 45, "image_id": 2, "category_id": 3}, ["annotation 45", "no bbox"]),
])
def test_coco_bad_annotations_name_file_and_id_or_are_skipped(tmp_path, capsys, bad, words):
    path = _coco(tmp_path, GOOD + [bad])
    with pytest.raises(DataError) as e:
        coco(path)
    msg = str(e.value)
    assert "ann.json" in msg and "data.skip_bad" in msg and "\n" not in msg
    for w in words:
        assert w in msg
    d = coco(path, skip_bad=True)
    assert sum(len(t["labels"]) for t in d.targets) == 3  # the good ones
    err = capsys.readouterr().err
    assert "skipped 1 annotation (data.skip_bad)" in err and words[0] in err


def test_coco_missing_or_broken_image_file(tmp_path, capsys):
    path = _coco(tmp_path, GOOD)
    (tmp_path / "b.png").unlink()
    with pytest.raises(DataError, match=r"image 2 file 'b.png' not found .*annotations 3"):
        coco(path)
    (tmp_path / "b.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"b.png.* cannot be read"):
        coco(path)
    d = coco(path, skip_bad=True)
    assert len(d.targets) == 2 and "skipped 1 image" in capsys.readouterr().err


def test_coco_file_problems(tmp_path):
    with pytest.raises(DataError, match="needs data.path"):
        DATASETS.get("coco").fn()
    with pytest.raises(DataError, match="not found"):
        coco(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        coco(tmp_path / "x.json")
    (tmp_path / "x.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="not a COCO detection file"):
        coco(tmp_path / "x.json")


def test_coco_images_in_an_images_subfolder_of_any_sizes(tmp_path):
    (tmp_path / "images").mkdir()
    _image(tmp_path / "images" / "a.png", (40, 30))
    _image(tmp_path / "images" / "b.png", (24, 36))
    (tmp_path / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "x"}]}))
    d = coco(tmp_path / "ann.json")
    assert isinstance(d.images, list) and [tuple(x.shape) for x in d.images] == [(3, 30, 40), (3, 36, 24)]
    data = DetImages(d.images * 3, d.targets * 3, d.class_names).split(SplitSpec("coco", "auto", 0.2, 0.2, True, 0))
    assert data.info.in_shape == (3, 36, 40)  # the largest height and width
    xs, ts = next(iter(data.loader("train", 2, True, 0, torch.device("cpu"))))
    assert len(xs) == 2 and all(x.dtype == torch.float32 for x in xs)


def test_voc_det_reads_the_voc_layout(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    for split, ids in (("train", ["a", "b", "c", "d", "e", "f"]), ("val", ["g"])):
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            _image(base / "JPEGImages" / f"{i}.jpg", (50, 40))
            objects = "" if i == "b" else (
                "<object><name>dog</name><difficult>0</difficult>"
                "<bndbox><xmin>3</xmin><ymin>4</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>"
                "<object><name>cat</name><difficult>1</difficult>"
                "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>")
            (base / "Annotations" / f"{i}.xml").write_text(
                f"<annotation><filename>{i}.jpg</filename><size><width>50</width><height>40</height></size>"
                f"{objects}</annotation>")
    d = DATASETS.get("voc_det").fn(root=str(tmp_path))
    assert len(d.class_names) == 20 and d.images.shape == (6, 3, 40, 50) and len(d.test[1]) == 1
    dog = d.class_names.index("dog") + 1
    assert d.targets[0]["labels"].tolist() == [dog] and d.targets[0]["boxes"].tolist() == [[2, 3, 20, 30]]
    assert d.targets[1]["labels"].tolist() == []  # no object; the 'difficult' cat is left out everywhere
    with pytest.raises(DataError, match="VOCdevkit"):
        DATASETS.get("voc_det").fn(root=str(tmp_path / "none"))


# --------------------------------------------------------------------------- the detector


@pytest.mark.parametrize("sets", [["model.name=rcnn_cnn", "model.widths=[8,16,16]"],
                                  ["model.name=fasterrcnn", "model.widths=[8,16,16]", "model.fpn=true"],
                                  ["model.name=rcnn_resnet18_fpn", "model.fpn_width=16"],
                                  ["model.name=rcnn_vgg11", "model.head_width=32"],
                                  ["model.name=rcnn_alexnet", "model.head_width=32"]])
def test_detectors_train_and_detect(sets):
    torch.manual_seed(0)
    cfg = config.resolve(sets=sets)
    m = build_model(cfg, (3, 64, 64), 4, "detections")
    images = [torch.randn(3, 64, 64), torch.randn(3, 64, 64)]
    targets = [target([[5, 5, 30, 40], [40, 10, 60, 30]], [1, 3]), target([], [])]  # the second: no object
    m.train()
    losses = m(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    m.eval()
    with torch.no_grad():
        out = m(images)
    assert len(out) == 2 and set(out[0]) == {"boxes", "labels", "scores"}
    assert out[0]["boxes"].shape[1] == 4 and len(out[0]["boxes"]) <= cfg["model.detections_per_img"]
    assert m.describe()[0].startswith("1 backbone")
    st = m.stages(images[0])
    assert st["proposals"].shape[1] == 4 and len(st["proposals"]) <= cfg["model.proposals"][1]


def test_detector_options_reach_torchvision():
    cfg = config.resolve(sets=["model.name=fasterrcnn", "model.anchor_sizes=[10,20]", "model.aspect_ratios=[1.0]",
                               "model.min_size=96", "model.max_size=160", "model.rpn_batch=64", "model.roi_batch=32",
                               "model.proposals=[50,20]", "model.score_thresh=0.3", "model.nms_iou=0.4",
                               "model.detections_per_img=7"])
    m = build_model(cfg, (1, 64, 64), 3, "detections")
    assert m.rpn.anchor_generator.sizes == ((10, 20),) and m.rpn.anchor_generator.aspect_ratios == ((1.0,),)
    assert m.transform.min_size == (96,) and m.transform.max_size == 160
    assert m.rpn.fg_bg_sampler.batch_size_per_image == 64 and m.roi_heads.fg_bg_sampler.batch_size_per_image == 32
    assert m.rpn._post_nms_top_n == {"training": 50, "testing": 20}
    assert (m.roi_heads.score_thresh, m.roi_heads.nms_thresh, m.roi_heads.detections_per_img) == (0.3, 0.4, 7)
    assert m.roi_heads.box_predictor.cls_score.out_features == 3


def test_detector_and_data_mismatches_are_config_errors():
    with pytest.raises(ConfigError, match="is a detector"):
        MODELS.get("fasterrcnn").fn(in_shape=(3, 32, 32), num_outputs=3, output_kind="scores")
    with pytest.raises(ConfigError, match=r"model 'fasterrcnn' gives detections.*needs scores"):
        build_model(config.resolve(sets=["model.name=fasterrcnn"]), (3, 32, 32), 3, "scores")
    with pytest.raises(ConfigError, match=r"model 'resnet18' gives .*needs detections; models that do: fasterrcnn"):
        build_model(config.resolve(sets=["model.name=resnet18"]), (3, 32, 32), 3, "detections")
    with pytest.raises(ConfigError, match="one size per pyramid level"):
        build_model(config.resolve(sets=["model.name=rcnn_resnet18_fpn", "model.anchor_sizes=[16,32]"]),
                    (3, 64, 64), 3, "detections")
    with pytest.raises(ConfigError, match="backbone 'cnn' has no pretrained weights"):
        build_model(config.resolve(sets=["model.name=rcnn_cnn", "model.pretrained=true"]), (3, 64, 64), 3,
                    "detections")
    with pytest.raises(ConfigError, match="model.backbone 'resnet19'"):
        build_model(config.resolve(sets=["model.name=fasterrcnn", "model.backbone=resnet19"]), (3, 64, 64), 3,
                    "detections")


# --------------------------------------------------------------------------- through the Trainer


def test_training_logs_the_loss_parts_and_resumes_exactly(tmp_path):
    """metrics.csv gets the detector's loss parts (their sum is train/loss) and the COCO metrics, no
    val/loss; a resumed run repeats an uninterrupted one exactly (seeded shuffles and flips, and the
    detector's own sampling from the global RNG, whose state last.pt keeps)."""
    from dlseminar import assemble, run

    sets = ("model.name=fasterrcnn", "model.widths=[8,16,16]", "train.batch_size=4", "data.augment=[hflip]",
            "early_stop.patience=0")
    whole, summary = run.train(det_cfg(*sets, "train.epochs=2", f"out={tmp_path / 'a'}"))
    part, _ = run.train(det_cfg(*sets, "train.epochs=1", "logging.plots=false", f"out={tmp_path / 'b'}"))
    run.train(None, resume=str(part / "last.pt"), named={"epochs": 2})

    def rows(d):
        with open(d / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    assert rows(whole) == rows(part) and len(rows(part)) == 2
    parts = ["train/rpn_objectness", "train/rpn_box", "train/cls", "train/box"]
    for r in rows(whole):
        assert abs(float(r["train/loss"]) - sum(float(r[p]) for p in parts)) < 1e-5  # the loss is their sum
        assert {"val/map", "val/map50", "val/map75", "val/recall"} <= set(r) and "val/loss" not in r
    assert summary.monitor == "val/map50" and summary.loss == "rcnn"
    assert set(summary.test) == {"test/map", "test/map50", "test/map75", "test/recall"}
    assert {"plots/curves.png", "plots/detections.png", "plots/stages.png"} <= set(summary.plots)
    with pytest.raises(ConfigError, match="does not fit a detection task"):
        assemble.build(det_cfg("model.name=fasterrcnn", "loss.name=mse"))
