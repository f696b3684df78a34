"""Your own segmentation data: images and their class masks, matched by file name.

    data.root/
        images/   a.jpg  b.png  more/c.webp ...   any size and mode
        masks/    a.png  b.png  more/c.png  ...   one PNG per image, same relative path and stem
        classes.txt                               optional: one class name per line, background first

A mask holds one class index per pixel (mode L, P or I; 255 = ignore). In a palette (P)
mask the stored values ARE the palette indices, so they are the class indices, and the
palette's colours are kept for plots and `dlsem predict`. Images that all share one size keep
it (U-Net takes any); data.image_size resizes every pair to a square, which mixed sizes need.
Files are only read, never written.
`pair_reader` is shared with voc_seg.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..console import note
from ..engine.losses import IGNORE
from ..errors import ConfigError, DataError
from ..registry import DATASETS
from .imageio import IMAGE_SUFFIXES, load_image, opened, walk_files
from ..tasks.segmentation.data import SegImages

MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")  # modes whose pixel values are class indices


class SizeMismatch(DataError):
    """An image and its mask differ in size: a labelling mistake that data.skip_bad does not skip."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def load_mask(path: Path) -> tuple[np.ndarray, list[int] | None]:
    """A class-index PNG -> ((H, W) int64 values, its RGB palette as a flat list or None)."""
    with opened(path, "mask") as im:
        if im.mode not in MASK_MODES:
            raise DataError(f"mask {str(path)!r} is a {im.mode} image; masks must hold class indices "
                            f"(mode L or P: each pixel's value is its class, 255 = ignore), not colours")
        palette = im.getpalette() if im.mode == "P" else None
        a = np.array(im, dtype=np.int64)  # P: the palette indices themselves, not their colours
    return a, palette


class Pair:
    """One decoded (image, mask) pair: x (C, H, W) uint8, m (H, W) uint8, top = largest class value."""

    def __init__(self, x: torch.Tensor, m: np.ndarray, palette):
        labelled = m[m != IGNORE]
        self.top = int(labelled.max()) if labelled.size else -1
        self.low = int(m.min())
        self.x, self.palette = x, palette
        # uint8 while loading (values above 255 are reported by check_values, never stored)
        self.m = torch.from_numpy(np.clip(m, 0, 255).astype(np.uint8))


def read_pair(image: Path, mask: Path, channels: int, size: tuple[int, int] | None) -> Pair:
    """Decode one pair, check that image and mask agree in size, resize both to `size` (H, W) when given.

    The image is resized bilinearly (antialiased); the mask with nearest neighbour, never
    interpolated: a class between 'cat' (8) and 'chair' (9) does not exist.
    """
    m, palette = load_mask(mask)
    x = load_image(image, channels, None)  # (C, H, W) at the file's own size
    if tuple(x.shape[1:]) != m.shape:
        raise SizeMismatch(f"image {str(image)!r} is {x.shape[2]}x{x.shape[1]} but its mask {str(mask)!r} is "
                        f"{m.shape[1]}x{m.shape[0]} (width x height); a mask must have its image's size")
    pair = Pair(x, m, palette)
    if size is not None and tuple(x.shape[1:]) != size:
        import torchvision.transforms.v2.functional as TF

        pair.x = TF.resize(x, list(size), antialias=True)
        pair.m = F.interpolate(pair.m[None, None], size=size, mode="nearest-exact")[0, 0]
    return pair


def pair_reader(pairs: list[tuple[Path, Path]], channels: int, size, skip_bad: bool, can_skip: bool = True):
    """Decode every pair in threads (Pillow decodes without the GIL).

    Returns the readable Pairs in order and the (file, error) of the unreadable ones. An
    unreadable file stops here unless skip_bad; a size mismatch always stops (it is a
    labelling mistake, not a damaged file).
    """
    out: list[Pair | DataError | None] = [None] * len(pairs)

    def read(i: int) -> None:
        try:
            out[i] = read_pair(*pairs[i], channels, size)
        except DataError as e:
            out[i] = e

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(read, range(len(pairs))))
    bad = [(p, e) for p, e in zip(pairs, out) if isinstance(e, DataError)]
    mismatch = [e for _, e in bad if isinstance(e, SizeMismatch)]
    if mismatch:
        raise mismatch[0]
    if bad and not skip_bad:
        hint = ", or pass --set data.skip_bad=true to skip unreadable images" if can_skip else ""
        raise DataError(f"{bad[0][1]}; fix or remove it{hint}")
    if bad:
        first = bad[0][0][0]
        note(f"skipped {_plural(len(bad), 'unreadable image/mask pair')} (first: {first})")
    return [p for p in out if isinstance(p, Pair)], [(pr, e) for pr, e in bad]


def check_values(pairs: list[Pair], masks: list[Path], k: int, where: str) -> None:
    """Every mask value is a class index below k, or 255 (ignore); else one error naming the file."""
    for p, f in zip(pairs, masks):
        if p.low < 0 or p.top >= k:
            v = p.low if p.low < 0 else p.top
            if v < 0 or v > IGNORE:
                raise DataError(f"mask {str(f)!r} has value {v}; class indices must be 0..{IGNORE - 1} ({IGNORE} = ignore)")
            raise DataError(f"mask {str(f)!r} has value {v} but {where} gives {k} classes "
                            f"(values 0..{k - 1} are classes, {IGNORE} = ignore)")


def stack(pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) uint8 images and (N, H, W) int64 masks."""
    return torch.stack([p.x for p in pairs]), torch.stack([p.m for p in pairs]).long()


def palette_of(pairs: list[Pair], k: int) -> torch.Tensor | None:
    """(k, 3) uint8 colours from the first palette mask (classes beyond its palette get black)."""
    flat = next((p.palette for p in pairs if p.palette), None)
    if flat is None:
        return None
    rgb = np.zeros((k, 3), dtype=np.uint8)
    have = np.asarray(flat[: 3 * k], dtype=np.uint8).reshape(-1, 3)
    rgb[: len(have)] = have
    return torch.from_numpy(rgb)


def _files(d: Path) -> dict[str, Path]:
    """relative path without suffix -> file, below d, recursively; hidden entries skipped."""
    out: dict[str, Path] = {}
    for p in walk_files(d):
        key = p.relative_to(d).with_suffix("").as_posix()
        if key in out:
            raise DataError(f"{str(out[key])!r} and {str(p)!r} have the same name; "
                            f"images and masks are matched by name, so each name must be used once")
        out[key] = p
    return out


def _class_names(root: Path, num_classes: int | None, top: int) -> list[str]:
    """From root/classes.txt if present, else 'background', 'class1', ...; checked against num_classes."""
    path = root / "classes.txt"
    if path.is_file():
        try:
            names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {str(path)!r}: {e}") from None
        if len(names) < 2:
            raise DataError(f"{str(path)!r} names {len(names)} class(es); it needs one name per line, background first")
        if num_classes and num_classes != len(names):
            raise DataError(f"{str(path)!r} names {len(names)} classes but data.num_classes is {num_classes}")
        return names
    k = num_classes or top + 1
    if k < 2:
        raise DataError(f"the masks under {str(root / 'masks')!r} hold only class 0 (or only {IGNORE} = ignore); "
                        f"segmentation needs at least 2 classes")
    return ["background", *[f"class{i}" for i in range(1, k)]]


@DATASETS.register("seg_folder", kind="segmentation")
def seg_folder(root="data", image_size=None, num_classes=None, channels=3, skip_bad=False):
    """Your images and class-index masks: data.root/images/*, data.root/masks/*.png (255 = ignore; classes.txt optional)."""
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {channels})")
    if num_classes is not None and not 2 <= num_classes <= IGNORE:
        raise ConfigError(f"data.num_classes for seg_folder must be between 2 and {IGNORE} (got {num_classes})")
    base = Path(root).expanduser()
    img_dir, mask_dir = base / "images", base / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise DataError(f"{str(d)!r} not found; seg_folder reads data.root/images/ (the images) and "
                            f"data.root/masks/ (one class-index PNG per image, same name); set data.root")
    images, masks = _files(img_dir), _files(mask_dir)
    others = [p for p in images.values() if p.suffix.lower() not in IMAGE_SUFFIXES]
    images = {k: p for k, p in images.items() if p.suffix.lower() in IMAGE_SUFFIXES}
    others += [p for p in masks.values() if p.suffix.lower() not in IMAGE_SUFFIXES]
    masks = {k: p for k, p in masks.items() if p.suffix.lower() in IMAGE_SUFFIXES}
    if others:
        note(f"ignored {_plural(len(others), 'non-image file')} (first: {others[0]})")
    if not images:
        raise DataError(f"no images in {str(img_dir)!r} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    for key, m in masks.items():
        if m.suffix.lower() != ".png":
            raise DataError(f"mask {str(m)!r} is not a PNG; save masks as PNG (lossless: JPEG would change the class values)")
        if key not in images:
            raise DataError(f"mask {str(m)!r} has no image (expected {str(img_dir / key)}.<png|jpg|...>)")
    for key, im in images.items():
        if key not in masks:
            raise DataError(f"image {str(im)!r} has no mask (expected {str(mask_dir / key)}.png)")

    keys = sorted(images)
    size = (image_size, image_size) if image_size else None
    pairs, bad = pair_reader([(images[k], masks[k]) for k in keys], channels, size, skip_bad)
    skipped = {img for (img, _), _ in bad}
    files = [(images[k], masks[k]) for k in keys if images[k] not in skipped]
    if not pairs:
        raise DataError(f"no readable image/mask pairs under {str(base)!r}")
    if size is None:  # keep the images' own size (U-Net takes any), but one size for the whole set
        h0, w0 = pairs[0].x.shape[1:]
        other = next((i for i, p in enumerate(pairs) if p.x.shape[1:] != (h0, w0)), None)
        if other is not None:
            h1, w1 = pairs[other].x.shape[1:]
            raise DataError(f"images differ in size ({w0}x{h0} {str(files[0][0])!r}, {w1}x{h1} {str(files[other][0])!r}); "
                            f"set data.image_size to resize them all (masks with nearest neighbour)")
    top = max((p.top for p in pairs if p.top < IGNORE), default=-1)  # values above 255 are reported below
    names = _class_names(base, num_classes, top)
    check_values(pairs, [m for _, m in files], len(names),
                 "classes.txt" if (base / "classes.txt").is_file() else
                 "data.num_classes" if num_classes else "the masks' largest value")
    X, M = stack(pairs)
    return SegImages(X, M, names, scale=255.0, palette=palette_of(pairs, len(names)))
