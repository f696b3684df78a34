"""Detection data from files: `coco` (any COCO-format JSON + image folder) and `voc_det` (Pascal VOC).

coco: data.path is the JSON file a labelling tool exports (CVAT, Label Studio, Roboflow, ...):

    {"images":      [{"id": 1, "file_name": "a.jpg", ...}, ...],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [x, y, w, h], "iscrowd": 0}, ...],
     "categories":  [{"id": 3, "name": "cat"}, ...]}

file_name is relative to data.image_dir, by default the JSON's folder (then its images/
sub-folder). Category ids are mapped to contiguous labels 1..K in id order, the names kept.
Images without annotations are kept (negatives); crowd annotations (iscrowd 1) are left out.
Boxes reaching outside their image are clipped to it. A box that is degenerate (zero width
or height after clipping), an unknown category or image id, or a missing or unreadable image
file stops with one error naming the JSON file, the annotation id and the image file, unless
data.skip_bad is true: then the annotation (or the image) is skipped and counted in one note.

voc_det: Pascal VOC 2012 read by torchvision.datasets.VOCDetection from
data.root/VOCdevkit/VOC2012/ (Annotations/, JPEGImages/, ImageSets/Main/{train,val}.txt):
the train list is split into train and val, the official val list is the test split.
Objects marked difficult are left out, as in VOC's own evaluation.

Both keep images at their own size unless data.image_size is set (then each image is resized
to image_size x image_size and its boxes scaled with it), decoded in memory or, for a set too
big for RAM, streamed from the files (data.in_memory).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..console import note
from ..errors import ConfigError, DataError
from ..registry import DATASETS
from ..tasks.detection.data import DetImages, target
from ..data.files import Files, Paths, scan
from ..data.imagestats import image_sums
from .imageio import ImageError, declared_pixels, opened, to_mode

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def _pil_to_tensor(im, channels: int, size: int | None) -> torch.Tensor:
    """A PIL image -> (C, H, W) uint8, resized to size x size when given."""
    from PIL import Image

    im = to_mode(im, channels)
    w, h = im.size
    if size and (w, h) != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


def _box_scale(size: int | None, w: int, h: int) -> tuple[float, float]:
    """(sx, sy): what box coordinates in a w x h image are multiplied by when it is resized to size x size."""
    return (size / w, size / h) if size else (1.0, 1.0)


def _stack(images: list[torch.Tensor]):
    """One (N, C, H, W) tensor when all images have one size, else the list."""
    if images and all(x.shape == images[0].shape for x in images):
        return torch.stack(images)
    return images


class Decoded:
    """One image read by `decode`: x (C, h, w) uint8 (None when streamed: its pixel sums instead), and the
    file's own (width, height), which boxes are clipped to and scaled from."""

    def __init__(self, x: torch.Tensor, size: tuple[int, int], keep: bool):
        self.x, self.sums = (x, None) if keep else (None, image_sums(x))
        self.shape, self.size = tuple(x.shape), size


class ReadDet:
    """An image file -> (uint8 (C, H, W),) converted to data.channels and resized to data.image_size when set:
    how coco and voc_det decode, in memory or, streamed, in a worker process."""

    def __init__(self, channels: int, size: int | None):
        self.channels, self.size = channels, size

    def __call__(self, path) -> tuple[torch.Tensor]:
        with opened(Path(path)) as pil:
            return (_pil_to_tensor(pil, self.channels, self.size),)


def decode(files: list[Path], channels: int, size: int | None, keep: bool) -> list:
    """Each file as Decoded (keep: with its pixels), or the DataError that reading it raised; in threads."""
    def one(i: int) -> Decoded:
        with opened(files[i]) as pil:  # truncated, not an image, a decompression bomb ...: one ImageError
            return Decoded(_pil_to_tensor(pil, channels, size), pil.size, keep)

    return scan(len(files), one)


def _images(decoded: list[Decoded], files: list[Path], channels: int, size: int | None, workers: int, skip_bad: bool):
    """The decoded images stacked (or their list, of many sizes), or, streamed, Files of them."""
    if not decoded or decoded[0].x is not None:
        return _stack([d.x for d in decoded])
    largest = (channels, max(d.shape[1] for d in decoded), max(d.shape[2] for d in decoded))
    return Files(Paths(files), ReadDet(channels, size), largest,
                 sums=torch.tensor([d.sums for d in decoded], dtype=torch.int64),
                 areas=torch.tensor([d.shape[1] * d.shape[2] for d in decoded], dtype=torch.int64), workers=workers,
                 skip_bad=skip_bad)


def _keep_in_memory(in_memory: str, what: str, files: list[Path], channels: int, size: int | None,
                    workers: int) -> tuple[bool, str | None]:
    """keep_in_memory for detection images: the decoded images and the split's copies of them, at
    data.image_size or at the sizes their headers declare (read only for auto)."""
    from ..memory import keep_in_memory

    def estimate() -> float:
        return 2.0 * channels * (len(files) * size * size if size else declared_pixels(files))

    return keep_in_memory(in_memory, estimate, what, workers)


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"coco: data.path {str(path)!r} not found") from None
    except IsADirectoryError:
        raise DataError(f"coco: data.path {str(path)!r} is a folder; give the COCO JSON file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"coco: cannot read {str(path)!r}: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict) or not isinstance(d.get("images"), list) or not isinstance(d.get("categories"), list):
        raise DataError(f"coco: {str(path)!r} is not a COCO detection file (needs 'images' and 'categories' lists)")
    return d


class _Bad:
    """Counts what data.skip_bad skipped, or stops at the first problem."""

    def __init__(self, json_path: Path, skip: bool):
        self.json, self.skip = json_path, skip
        self.annotations, self.images, self.first = 0, 0, None

    def __call__(self, what: str, msg: str) -> None:
        if not self.skip:
            raise DataError(f"coco {self.json}: {msg}; fix it or set data.skip_bad=true")
        setattr(self, what, getattr(self, what) + 1)
        self.first = self.first or msg

    def report(self) -> None:
        if self.annotations or self.images:
            parts = [f"{n} {w}{'s' if n != 1 else ''}" for n, w in ((self.annotations, "annotation"), (self.images, "image"))
                     if n]
            note(f"coco: skipped {' and '.join(parts)} (data.skip_bad); first: {self.first}")


@DATASETS.register("coco", kind="detection")
def coco(path=None, image_dir=None, image_size=None, channels=3, skip_bad=False, in_memory="auto", num_workers=2):
    """Your boxes: a COCO-format JSON (data.path) and its images (data.image_dir, default the JSON's folder)."""
    if path is None or str(path).strip() == "":
        raise DataError("dataset coco needs data.path: the COCO JSON file (images, annotations, categories)")
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {channels})")
    jpath = Path(path).expanduser()
    d = _read_json(jpath)
    roots = [Path(image_dir).expanduser()] if image_dir else [jpath.parent, jpath.parent / "images"]
    bad = _Bad(jpath, skip_bad)

    try:
        cats = sorted(d["categories"], key=lambda c: int(c["id"]))
        label_of = {int(c["id"]): k + 1 for k, c in enumerate(cats)}
        names = [str(c.get("name", c["id"])) for c in cats]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"coco {jpath}: every category needs an integer 'id' (and a 'name')") from None
    if not cats:
        raise DataError(f"coco {jpath}: no categories")
    by_image: dict[int, list[dict]] = {}
    image_ids = set()
    for im in d["images"]:
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"coco {jpath}: every image needs an 'id' and a 'file_name' (got {str(im)[:80]})")
        image_ids.add(im["id"])
    for a in d.get("annotations") or []:
        if not isinstance(a, dict):
            raise DataError(f"coco {jpath}: an annotation is not an object (got {str(a)[:80]})")
        if a.get("image_id") not in image_ids:
            bad("annotations", f"annotation {a.get('id')} refers to unknown image_id {a.get('image_id')!r}")
            continue
        by_image.setdefault(a["image_id"], []).append(a)

    found = [next((r / str(im["file_name"]) for r in roots if (r / str(im["file_name"])).is_file()), None)
             for im in d["images"]]
    present = [f for f in found if f is not None]
    keep, said = _keep_in_memory(in_memory, f"coco: {len(present):,} images", present, channels, image_size,
                                 num_workers)
    decoded = iter(decode(present, channels, image_size, keep))
    images, files, targets, crowd, clipped = [], [], [], 0, 0
    for im, file in zip(d["images"], found):
        anns = by_image.get(im["id"], [])
        ids = ", ".join(str(a.get("id")) for a in anns[:5]) + (", ..." if len(anns) > 5 else "")
        if file is None:
            bad("images", f"image {im['id']} file {im['file_name']!r} not found in {' or '.join(map(str, roots))}"
                          + (f" (annotations {ids})" if anns else ""))
            continue
        got = next(decoded)  # truncated, not an image, a decompression bomb ...: one ImageError
        if isinstance(got, ImageError):
            bad("images", f"image {im['id']} file {str(file)!r} cannot be read ({got.reason[:80]})"
                          + (f"; annotations {ids}" if anns else ""))
            continue
        W, H = got.size
        sx, sy = _box_scale(image_size, W, H)
        boxes, labels = [], []
        for a in anns:
            where = f"annotation {a.get('id')} (image {str(im['file_name'])!r})"
            if a.get("iscrowd", 0):
                crowd += 1
                continue
            if a.get("category_id") not in label_of:
                bad("annotations", f"{where} has unknown category_id {a.get('category_id')!r} "
                                   f"(known: {', '.join(map(str, label_of))})")
                continue
            try:
                bx, by, bw, bh = (float(v) for v in a["bbox"])
            except (KeyError, TypeError, ValueError):
                bad("annotations", f"{where} has no bbox [x, y, width, height] (got {a.get('bbox')!r})")
                continue
            x1, y1, x2, y2 = max(bx, 0.0), max(by, 0.0), min(bx + bw, float(W)), min(by + bh, float(H))
            if not all(np.isfinite([bx, by, bw, bh])) or x2 <= x1 or y2 <= y1:
                bad("annotations", f"{where} has a degenerate box {a.get('bbox')} (zero width or height "
                                   f"inside the {W}x{H} image)")
                continue
            clipped += (x1, y1, x2, y2) != (bx, by, bx + bw, by + bh)
            boxes.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
            labels.append(label_of[a["category_id"]])
        images.append(got)
        files.append(file)
        targets.append(target(boxes, labels))
    bad.report()
    if clipped:
        note(f"coco: {clipped} box{'es' if clipped != 1 else ''} reaching outside the image clipped to it")
    if crowd:
        note(f"coco: {crowd} crowd annotation{'s' if crowd != 1 else ''} (iscrowd 1) left out")
    if not images:
        raise DataError(f"coco {jpath}: no readable images")
    if said:
        note(said)
    return DetImages(_images(images, files, channels, image_size, num_workers, skip_bad), targets, names)


def _voc_lists(root: str, image_set: str):
    from torchvision.datasets import VOCDetection

    return VOCDetection(root, year="2012", image_set=image_set, download=False)


def _voc_split(ds, channels: int, size: int | None, keep: bool, workers: int):
    from torchvision.datasets.voc import ET_parse

    index = {n: k + 1 for k, n in enumerate(VOC_CLASSES)}
    images, targets = [], []
    files = [Path(f) for f in ds.images]  # ds[i] would open the JPEG unguarded: the file lists and the XML parser only
    for i, got in enumerate(decode(files, channels, size, keep)):
        ann = ds.parse_voc_xml(ET_parse(ds.annotations[i]).getroot())
        if isinstance(got, DataError):
            raise got
        W, H = got.size
        sx, sy = _box_scale(size, W, H)
        boxes, labels = [], []
        for obj in ann["annotation"].get("object", []):
            if str(obj.get("difficult", "0")) == "1":
                continue
            if obj["name"] not in index:
                raise DataError(f"voc_det: unknown class {obj['name']!r} in {ann['annotation'].get('filename')}")
            b = obj["bndbox"]  # 1-based pixel indices, inclusive
            x1, y1, x2, y2 = float(b["xmin"]) - 1, float(b["ymin"]) - 1, float(b["xmax"]), float(b["ymax"])
            boxes.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
            labels.append(index[obj["name"]])
        images.append(got)
        targets.append(target(boxes, labels))
    return _images(images, files, channels, size, workers, False), targets


@DATASETS.register("voc_det", kind="detection")
def voc_det(root="data", image_size=None, channels=3, download=False, in_memory="auto", num_workers=2):
    """Pascal VOC 2012 boxes, 20 classes (data.root/VOCdevkit/VOC2012; official val list = test split)."""
    base = Path(root) / "VOCdevkit" / "VOC2012"
    if download:
        from torchvision.datasets import VOCDetection

        try:
            VOCDetection(root, year="2012", image_set="trainval", download=True)
        except Exception as e:
            raise DataError(f"voc_det: download failed: {str(e).splitlines()[0]}") from None
    need = [base / "Annotations", base / "JPEGImages", base / "ImageSets" / "Main" / "train.txt",
            base / "ImageSets" / "Main" / "val.txt"]
    missing = [p for p in need if not p.exists()]
    if missing:
        raise DataError(f"voc_det: {missing[0]} not found; extract VOCtrainval_11-May-2012.tar into {root}/ "
                        f"(giving {base}/Annotations, JPEGImages, ImageSets/Main) or set data.download=true")
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {channels})")
    train, val = _voc_lists(root, "train"), _voc_lists(root, "val")
    every = [Path(f) for f in train.images + val.images]
    keep, said = _keep_in_memory(in_memory, f"voc_det: {len(every):,} images", every, channels, image_size,
                                 num_workers)
    images, targets = _voc_split(train, channels, image_size, keep, num_workers)
    test = _voc_split(val, channels, image_size, keep, num_workers)
    if said:
        note(said)
    return DetImages(images, targets, list(VOC_CLASSES), test=test)
