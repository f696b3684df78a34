"""Unit tests for the file-backed segmentation datasets: seg_folder (your images + masks) and voc_seg.

Every file is written here in its real on-disk format (PNG/JPEG images, palette or
grayscale class-index PNG masks, VOC's ImageSets lists); nothing touches the network.
"""
from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlseminar import catalog, config
from dlseminar.datasets import build_data
from dlseminar.datasets.seg_folder import seg_folder
from dlseminar.datasets.voc import VOC_CLASSES, voc_seg
from dlseminar.errors import DataError

catalog.load_all()

PALETTE = [0, 0, 0, 220, 20, 60, 30, 144, 255, 250, 170, 30]  # 4 class colours, as an annotation tool saves them


# --------------------------------------------------------------------------- writers

def scene(rng: np.random.RandomState, h: int, w: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with a rectangle (class 1) and a disc (class 2 if k > 2) and its mask, 255 on the top row."""
    img = rng.randint(0, 60, (h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    y0, x0 = rng.randint(0, h // 2), rng.randint(0, w // 2)
    mask[y0:y0 + h // 3, x0:x0 + w // 3] = 1
    if k > 2:
        yy, xx = np.mgrid[:h, :w]
        cy, cx, r = rng.randint(h // 4, 3 * h // 4), rng.randint(w // 4, 3 * w // 4), min(h, w) // 6
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
    img[mask == 1] = (200, 40, 40)
    img[mask == 2] = (40, 200, 40)
    mask[0] = 255  # an unlabelled row: ignored, as VOC's borders
    return img, mask


def save_mask(path: Path, mask: np.ndarray, palette: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        im = Image.fromarray(mask, "P")
        im.putpalette(PALETTE + [255] * (768 - len(PALETTE)))  # all 256 entries: an 8-bit PNG that can hold 255
    else:
        im = Image.fromarray(mask, "L")
    im.save(path)


def make_seg_folder(root: Path, n: int = 8, size=(131, 97), palette: bool = True, seed: int = 0,
                    sizes=None, k: int = 3) -> list[np.ndarray]:
    """root/images/im<i>.png and root/masks/im<i>.png; size is (H, W); returns the masks."""
    rng = np.random.RandomState(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    masks = []
    for i in range(n):
        h, w = sizes[i] if sizes else size
        img, mask = scene(rng, h, w, k)
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        save_mask(root / "masks" / f"im{i}.png", mask, palette)
        masks.append(mask)
    return masks


def digest(root: Path) -> dict:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def build(*sets):
    return build_data(config.resolve(sets=list(sets)))


# --------------------------------------------------------------------------- seg_folder

def test_palette_masks_odd_size_classes_inferred_and_files_untouched(tmp_path):
    masks = make_seg_folder(tmp_path, size=(131, 97))
    before = digest(tmp_path)
    seg = seg_folder(root=str(tmp_path))
    assert seg.X.shape == (8, 3, 131, 97) and seg.X.dtype == torch.uint8  # the odd size is kept
    assert seg.masks.dtype == torch.int64 and torch.equal(seg.masks, torch.from_numpy(np.stack(masks)).long())
    assert seg.class_names == ["background", "class1", "class2"]  # max value 2 (255 ignored) + 1
    assert seg.palette.tolist() == [PALETTE[0:3], PALETTE[3:6], PALETTE[6:9]]  # the file's colours
    data = build("data.name=seg_folder", f"data.root={tmp_path}")
    assert data.info.kind == "segmentation" and data.info.num_classes == 3 and data.info.in_shape == (3, 131, 97)
    assert set(data.splits) == {"train", "val", "test"} and data.stats["palette"].shape == (3, 3)
    assert digest(tmp_path) == before  # read only


def test_index_masks_any_image_mode_and_channels(tmp_path):
    make_seg_folder(tmp_path, n=6, size=(20, 30), palette=False)
    img = tmp_path / "images"
    rgb = np.asarray(Image.open(img / "im1.png"))
    Image.fromarray(rgb).convert("L").save(img / "im1.png")
    Image.fromarray(rgb).convert("RGBA").save(img / "im2.png")
    Image.fromarray(rgb).convert("P").save(img / "im3.png")
    Image.fromarray(rgb).save(img / "im4.jpg", quality=90)  # any image suffix; matched by stem
    (img / "im4.png").unlink()
    seg = seg_folder(root=str(tmp_path))
    assert seg.X.shape == (6, 3, 20, 30) and seg.palette is None
    gray = seg_folder(root=str(tmp_path), channels=1)
    assert gray.X.shape == (6, 1, 20, 30)


def test_classes_txt_and_num_classes(tmp_path):
    make_seg_folder(tmp_path, n=6, size=(16, 16))
    (tmp_path / "classes.txt").write_text("sky\nbox\ndisc\n\n")
    assert seg_folder(root=str(tmp_path)).class_names == ["sky", "box", "disc"]
    with pytest.raises(DataError, match=r"classes.txt.* names 3 classes but data.num_classes is 4"):
        build("data.name=seg_folder", f"data.root={tmp_path}", "data.num_classes=4")
    (tmp_path / "classes.txt").unlink()
    data = build("data.name=seg_folder", f"data.root={tmp_path}", "data.num_classes=5")  # more than the masks show
    assert data.info.class_names == ["background", "class1", "class2", "class3", "class4"]
    # unset num_classes is inferred (the schema's default 4 is for shapes), also when rebuilt from a checkpoint
    assert build("data.name=seg_folder", f"data.root={tmp_path}").info.num_classes == 3


def test_mixed_sizes_need_image_size_and_masks_stay_nearest(tmp_path):
    make_seg_folder(tmp_path, n=6, sizes=[(40, 50), (40, 50), (31, 45), (40, 50), (64, 64), (40, 50)])
    with pytest.raises(DataError, match=r"images differ in size \(50x40 .*im0.png.*, 45x31 .*im2.png.*\); "
                                        r"set data.image_size"):
        seg_folder(root=str(tmp_path))
    # a checkerboard of classes 0 and 2: bilinear interpolation would invent class 1 between them
    board = (np.indices((40, 50)).sum(0) % 2 * 2).astype(np.uint8)
    save_mask(tmp_path / "masks" / "im0.png", board)
    seg = seg_folder(root=str(tmp_path), image_size=24)
    assert seg.X.shape == (6, 3, 24, 24) and seg.masks.shape == (6, 24, 24)
    assert set(seg.masks[0].unique().tolist()) <= {0, 2}
    assert set(seg.masks.unique().tolist()) <= {0, 1, 2, 255}


def _no_mask(root):
    (root / "masks" / "im3.png").unlink()
    return "im3.png"


def _no_image(root):
    (root / "images" / "im3.png").unlink()
    return "masks/im3.png"


def _size_mismatch(root):
    save_mask(root / "masks" / "im2.png", np.zeros((10, 10), np.uint8))
    return "im2.png"


def _bad_value(root):
    m = np.zeros((131, 97), np.uint8)
    m[5, 5] = 7
    save_mask(root / "masks" / "im4.png", m)
    return "has value 7 but data.num_classes gives 3 classes"


def _corrupt_image(root):
    (root / "images" / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    return "images/im1.png"


def _empty_image(root):
    (root / "images" / "im5.png").write_bytes(b"")
    return "images/im5.png' is empty (0 bytes)"


def _corrupt_mask(root):
    (root / "masks" / "im1.png").write_bytes(b"not a png")
    return "masks/im1.png"


def _rgb_mask(root):
    Image.new("RGB", (97, 131), (255, 0, 0)).save(root / "masks" / "im2.png")
    return "im2.png' is a RGB image; masks must hold class indices"


def _jpeg_mask(root):
    (root / "masks" / "im2.png").unlink()
    Image.new("L", (97, 131), 1).save(root / "masks" / "im2.jpg")
    return "im2.jpg' is not a PNG"


def _empty_folder(root):
    for p in (root / "images").iterdir():
        p.unlink()
    for p in (root / "masks").iterdir():
        p.unlink()
    return "no images in"


def _no_masks_folder(root):
    for p in (root / "masks").iterdir():
        p.unlink()
    (root / "masks").rmdir()
    return "masks' not found; seg_folder reads data.root/images/"


@pytest.mark.parametrize("breaker", [_no_mask, _no_image, _size_mismatch, _bad_value, _corrupt_image, _empty_image,
                                     _corrupt_mask, _rgb_mask, _jpeg_mask, _empty_folder, _no_masks_folder])
def test_every_bad_case_is_one_data_error_naming_the_file(tmp_path, breaker):
    make_seg_folder(tmp_path, n=6)
    expected = breaker(tmp_path)
    sets = ["data.name=seg_folder", f"data.root={tmp_path}"] + (["data.num_classes=3"] if breaker is _bad_value else [])
    with pytest.raises(DataError) as e:
        build(*sets)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg, msg


def test_bad_values_without_num_classes(tmp_path):
    make_seg_folder(tmp_path, n=6)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    save_mask(tmp_path / "masks" / "im0.png", np.full((131, 97), 3, np.uint8))
    with pytest.raises(DataError, match=r"im0.png' has value 3 but classes.txt gives 3 classes"):
        seg_folder(root=str(tmp_path))
    (tmp_path / "classes.txt").unlink()
    Image.fromarray(np.full((131, 97), 300, np.uint16)).save(tmp_path / "masks" / "im0.png")  # a 16-bit PNG
    with pytest.raises(DataError, match=r"im0.png' has value 300; class indices must be 0..254"):
        seg_folder(root=str(tmp_path))


def test_skip_bad_skips_unreadable_pairs_with_a_count(tmp_path, capsys):
    make_seg_folder(tmp_path, n=7)
    _corrupt_image(tmp_path)
    _empty_image(tmp_path)
    seg = seg_folder(root=str(tmp_path), skip_bad=True)
    assert len(seg.X) == 5 and len(seg.masks) == 5
    assert "skipped 2 unreadable image/mask pairs (first:" in capsys.readouterr().err
    _size_mismatch(tmp_path)  # a labelling mistake is never skipped
    with pytest.raises(DataError, match="im2.png' is 97x131 but its mask"):
        seg_folder(root=str(tmp_path), skip_bad=True)


# --------------------------------------------------------------------------- voc_seg

def make_voc(root: Path, train=("2007_000032", "2007_000039", "2007_000063", "2007_000068", "2007_000121",
                                "2007_000129"), val=("2007_000033", "2007_000042", "2007_000061")) -> dict:
    """A tiny VOCdevkit/VOC2012 in the real layout: JPEGs of varying size, palette PNG masks with 255 borders."""
    base = root / "VOCdevkit" / "VOC2012"
    rng = np.random.RandomState(1)
    palette = [v for c in range(256) for v in ((c * 37) % 256, (c * 91) % 256, (c * 53) % 256)]
    masks = {}
    for name in (*train, *val):
        h, w = rng.randint(40, 80), rng.randint(40, 80)
        img, mask = scene(rng, h, w)
        mask[mask == 2] = 15  # 'person'
        mask[-2:] = 255  # VOC's object borders are 255
        (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(base / "JPEGImages" / f"{name}.jpg", quality=90)
        (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        m = Image.fromarray(mask, "P")
        m.putpalette(palette)
        m.save(base / "SegmentationClass" / f"{name}.png")
        masks[name] = mask
    lists = base / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("".join(f"{n}\n" for n in train))
    (lists / "val.txt").write_text("".join(f"{n}\n" for n in val))
    return {"palette": palette, "masks": masks}


def test_voc_seg_reads_the_real_layout_offline(tmp_path):
    fake = make_voc(tmp_path)
    before = digest(tmp_path)
    seg = voc_seg(root=str(tmp_path), image_size=32)
    assert seg.X.shape == (6, 3, 32, 32) and seg.masks.shape == (6, 32, 32)
    assert seg.test[0].shape == (3, 3, 32, 32) and seg.test[1].shape == (3, 32, 32)
    assert seg.class_names == list(VOC_CLASSES) and len(seg.class_names) == 21
    assert seg.palette.shape == (21, 3) and seg.palette[15].tolist() == fake["palette"][45:48]
    assert set(torch.cat([seg.masks.flatten(), seg.test[1].flatten()]).unique().tolist()) <= {0, 1, 15, 255}
    assert (seg.masks == 255).any()  # the border survives nearest-neighbour resizing
    data = build("data.name=voc_seg", f"data.root={tmp_path}", "data.image_size=32", "data.val_split=0.34")
    assert data.info.num_classes == 21 and data.info.in_shape == (3, 32, 32)
    assert len(data.splits["test"][0]) == 3  # VOC's val list is the test split
    assert len(data.splits["train"][0]) + len(data.splits["val"][0]) == 6
    assert digest(tmp_path) == before


def test_voc_seg_default_size_and_bad_mask(tmp_path):
    fake = make_voc(tmp_path)
    assert voc_seg(root=str(tmp_path)).X.shape[-2:] == (128, 128)
    bad = np.full(fake["masks"]["2007_000042"].shape, 30, np.uint8)
    Image.fromarray(bad, "L").save(tmp_path / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000042.png")
    with pytest.raises(DataError, match=r"2007_000042.png' has value 30 but VOC gives 21 classes"):
        voc_seg(root=str(tmp_path), image_size=16)


def test_voc_seg_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        build("data.name=voc_seg", f"data.root={tmp_path / 'data'}")
    msg = str(e.value)
    assert msg.startswith(f"voc_seg not found under {tmp_path / 'data' / 'VOCdevkit' / 'VOC2012'}"), msg
    assert "JPEGImages" in msg and "--set data.download=true" in msg
    assert not (tmp_path / "data").exists()  # nothing created, no download tried

    import torchvision.datasets.voc as tv_voc

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(tv_voc, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match=r"downloading voc_seg into .* failed: .*no network here"):
        build("data.name=voc_seg", f"data.root={tmp_path / 'data'}", "data.download=true")


def test_explicit_num_classes_above_the_masks_is_kept_through_eval(tmp_path):
    """data.num_classes: 4 set by the user (masks only hold 0-2) stays 4 in eval: the saved config carries it."""
    from dlseminar.inference import evaluate
    from dlseminar.run import train

    make_seg_folder(tmp_path / "d", n=8, size=(24, 20))
    cfg = config.resolve(sets=["data.name=seg_folder", f"data.root={tmp_path / 'd'}", "data.num_classes=4",
                               "model.name=unet", "model.depth=1", "model.base_width=2", "train.epochs=1",
                               "logging.plots=false", f"out={tmp_path / 'run'}"])
    run_dir, summary = train(cfg)
    result, details, _ = evaluate(str(run_dir / "best.pt"), "test")
    assert result == summary.test
    assert len(details[1]) == 4  # one IoU row per class, the unused one included


def test_predict_needs_no_dataset_files_and_keeps_their_palette(tmp_path):
    """The checkpoint carries the data description, the stats and the masks' palette: predicting on
    new images reads nothing of the training data (VOC would mean decoding ~2,900 files)."""
    import shutil

    from dlseminar.inference import predict_images
    from dlseminar.run import train

    make_seg_folder(tmp_path / "d", n=8, size=(24, 20), palette=True)
    want = Image.open(next((tmp_path / "d/masks").iterdir())).getpalette()[: 3 * 3]
    probe = tmp_path / "new.png"
    Image.fromarray(np.zeros((31, 17, 3), np.uint8)).save(probe)
    cfg = config.resolve(sets=["data.name=seg_folder", f"data.root={tmp_path / 'd'}", "model.name=unet",
                               "model.depth=1", "model.base_width=2", "train.epochs=1", "logging.plots=false",
                               f"out={tmp_path / 'run'}"])
    run_dir, _ = train(cfg)
    shutil.rmtree(tmp_path / "d")
    results, _, _ = predict_images(str(run_dir / "best.pt"), [str(probe)], out=tmp_path / "pred")
    mask = Image.open(tmp_path / "pred/new_mask.png")
    assert mask.size == (17, 31) and mask.getpalette()[: 3 * 3] == want
