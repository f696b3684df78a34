"""Pascal VOC 2012 semantic segmentation through torchvision, read from data.root.

    data.root/VOCdevkit/VOC2012/
        JPEGImages/*.jpg
        SegmentationClass/*.png                   palette PNGs: value = class, 255 = the ignored border
        ImageSets/Segmentation/train.txt, val.txt

which is what VOCtrainval_11-May-2012.tar unpacks to inside data.root. Nothing is
downloaded unless data.download is true (then torchvision fetches the 2 GB archive once).

Splits follow VOC's own lists, as vision.py does for MNIST/CIFAR: train.txt (1,464 images)
is the training set, with the validation split (data.val_split, by seed) carved from it for
early stopping; val.txt (1,449 images) is the test split, since VOC's test labels are not
public. So test/miou is the usual "VOC 2012 val" number, though measured at data.image_size,
not at the original resolution. Images vary in size: each is resized to data.image_size
square (bilinear; masks nearest neighbour, so the 255 border stays 255). A machine without the
RAM for them streams the files instead (data.in_memory).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..console import note
from ..errors import ConfigError, DataError
from ..registry import DATASETS
from .seg_folder import check_values, in_memory_choice, pair_reader, palette_of, stack, streamed
from ..tasks.segmentation.data import SegImages
from .vision import NET_TIMEOUT_S, one_line, socket_timeout

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOC_PARTS = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt")


def _lists(root: str, download: bool):
    """torchvision's VOCSegmentation for train and val (file lists only), or one DataError saying what to do."""
    import torchvision.datasets as tvd

    base = Path(root) / "VOCdevkit" / "VOC2012"
    present = all((base / part).exists() for part in VOC_PARTS)
    missing = (f"voc_seg not found under {base} (expects {', '.join(VOC_PARTS)}); put the files there "
               f"(VOCtrainval_11-May-2012.tar unpacked into {root}) or pass --set data.download=true (needs the network, 2 GB)")
    if not present and not download:
        raise DataError(missing)
    if download and not present:
        note(f"downloading Pascal VOC 2012 (2 GB) into {root} (once; later runs read it from there)")
    try:
        with socket_timeout(NET_TIMEOUT_S) if download and not present else contextlib.nullcontext():
            train = tvd.VOCSegmentation(root, year="2012", image_set="train", download=download and not present)
        val = tvd.VOCSegmentation(root, year="2012", image_set="val")
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a missing folder is a RuntimeError
        if download and not present:
            raise DataError(f"downloading voc_seg into {root} failed: {one_line(e)}; check the network, "
                            f"or put the files under {base} yourself") from None
        raise DataError(f"cannot read voc_seg under {base}: {one_line(e, 160)}") from None
    return base, train, val


def _pairs(ds) -> list[tuple[Path, Path]]:
    pairs = [(Path(i), Path(m)) for i, m in zip(ds.images, ds.masks)]
    if not pairs:
        raise DataError(f"the VOC list {ds.image_set}.txt names no images")
    return pairs


def _read(pairs, channels: int, size: int, keep: bool, workers: int):
    """The list's pairs decoded (keep) or scanned and streamed; checked against VOC's classes."""
    read, _ = pair_reader(pairs, channels, (size, size), skip_bad=False, can_skip=False, keep=keep)
    check_values(read, [m for _, m in pairs], len(VOC_CLASSES), "VOC")
    return read, (stack(read) if keep else streamed(read, pairs, channels, (size, size), workers, False))


@DATASETS.register("voc_seg", kind="segmentation")
def voc_seg(root="data", download=False, image_size=None, channels=3, in_memory="auto", num_workers=2):
    """Pascal VOC 2012 segmentation, 21 classes (255 = ignore), resized to data.image_size (default 128); from data.root."""
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {channels})")
    size = image_size or 128
    _, train, val = _lists(str(root), download)
    tr, te = _pairs(train), _pairs(val)
    keep, said = in_memory_choice(in_memory, f"voc_seg: {len(tr) + len(te):,} image/mask pairs", [i for i, _ in tr + te],
                            channels, (size, size), num_workers)
    (read, (X, M)), (_, test) = _read(tr, channels, size, keep, num_workers), _read(te, channels, size, keep, num_workers)
    if said:
        note(said)
    return SegImages(X, M, list(VOC_CLASSES), scale=255.0, palette=palette_of(read, len(VOC_CLASSES)), test=test)
