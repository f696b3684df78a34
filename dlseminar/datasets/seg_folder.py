"""Your own segmentation data: images and their class masks, matched by file name.

    data.root/
        images/   a.jpg  b.png  more/c.webp ...   any size and mode
        masks/    a.png  b.png  more/c.png  ...   one PNG per image, same relative path and stem
        classes.txt                               optional: one class name per line, background first

A mask holds one class index per pixel (mode L, P or I; 255 = ignore). In a palette (P)
mask the stored values ARE the palette indices, so they are the class indices, and the
palette's colours are kept for plots and `dlsem predict`. Images that all share one size keep
it (U-Net takes any); data.image_size resizes every pair to a square, which mixed sizes need.
Files are only read, never written. A set too big for RAM is streamed (data.in_memory).
`pair_reader`, `streamed` and `in_memory_choice` are shared with voc_seg.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..console import note
from ..engine.losses import IGNORE
from ..errors import ConfigError, DataError
from ..registry import DATASETS
from ..data.files import Files, Paths, scan
from ..data.imagestats import image_sums
from .imageio import IMAGE_SUFFIXES, declared_pixels, load_image, opened, walk_files
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
    """One decoded (image, mask) pair: x (C, H, W) uint8, m (H, W) uint8, top = largest class value.
    A scan for streaming keeps only what the checks need: x and m are dropped, the image's pixel sums kept."""

    def __init__(self, x: torch.Tensor, m: np.ndarray, palette):
        labelled = m[m != IGNORE]
        self.top = int(labelled.max()) if labelled.size else -1
        self.low = int(m.min())
        self.x, self.palette = x, palette
        # uint8 while loading (values above 255 are reported by check_values, never stored)
        self.m = torch.from_numpy(np.clip(m, 0, 255).astype(np.uint8))
        self.sums: list | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.x.shape[1:]) if self.x is not None else self._shape

    def drop(self) -> Pair:
        """Keep the checks' values and the image's pixel sums, not the pixels (a streamed set's scan)."""
        self._shape, self.sums = tuple(self.x.shape[1:]), image_sums(self.x)
        self.x = self.m = None
        if self.palette:  # 768 bytes, not a list of 768 ints (6 KB) kept for every mask
            self.palette = bytes(self.palette)
        return self


class ReadPair:
    """(image file, mask file) -> (x (C, H, W) uint8, mask (H, W) int64), as a streamed batch reads them."""

    def __init__(self, channels: int, size: tuple[int, int] | None):
        self.channels, self.size = channels, size

    def __call__(self, image, mask) -> tuple[torch.Tensor, torch.Tensor]:
        p = read_pair(image, mask, self.channels, self.size)
        return p.x, p.m.long()


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


def pair_reader(pairs: list[tuple[Path, Path]], channels: int, size, skip_bad: bool, can_skip: bool = True,
                keep: bool = True):
    """Decode every pair in threads (Pillow decodes without the GIL).

    Returns the readable Pairs in order and the (file, error) of the unreadable ones. An
    unreadable file stops here unless skip_bad; a size mismatch always stops (it is a
    labelling mistake, not a damaged file). keep=False (streaming): each Pair keeps its checks'
    values and pixel sums, not its pixels.
    """
    out = scan(len(pairs), lambda i: read_pair(*pairs[i], channels, size) if keep
               else read_pair(*pairs[i], channels, size).drop())
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


def streamed(pairs: list[Pair], files: list[tuple[Path, Path]], channels: int, size, workers: int,
             skip_bad: bool) -> tuple[Files, Files]:
    """The scanned pairs as Files of (image, mask): images (N, C, H, W) and masks (N, H, W), read together."""
    h, w = pairs[0].shape
    X = Files(Paths(files), ReadPair(channels, size), (channels, h, w),
              sums=torch.tensor([p.sums for p in pairs], dtype=torch.int64),
              areas=torch.full((len(pairs),), h * w, dtype=torch.int64), workers=workers, skip_bad=skip_bad)
    return X, X.column_of(1, (h, w))


def decoded_bytes(pixels: int, channels: int) -> float:
    """RAM the in-memory path takes for pairs of `pixels` pixels in all: the decoded pairs (uint8 image and
    mask), their stack (uint8 images, int64 masks) and the split's copies of that stack."""
    return pixels * ((channels + 1) + 2 * (channels + 8))


def in_memory_choice(in_memory: str, what: str, images: list[Path], channels: int, size,
                     workers: int) -> tuple[bool, str | None]:
    """keep_in_memory for image/mask pairs: the estimate at data.image_size, or at the sizes the image
    headers declare (read only for auto)."""
    from ..memory import keep_in_memory

    def estimate() -> float:
        pixels = len(images) * size[0] * size[1] if size else declared_pixels(images)
        return decoded_bytes(pixels, channels)

    return keep_in_memory(in_memory, estimate, what, workers)


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
def seg_folder(root="data", image_size=None, num_classes=None, channels=3, skip_bad=False, in_memory="auto",
               num_workers=2):
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
    keep, said = in_memory_choice(in_memory, f"seg_folder: {_plural(len(keys), 'image/mask pair')}",
                            [images[k] for k in keys], channels, size, num_workers)
    pairs, bad = pair_reader([(images[k], masks[k]) for k in keys], channels, size, skip_bad, keep=keep)
    skipped = {img for (img, _), _ in bad}
    files = [(images[k], masks[k]) for k in keys if images[k] not in skipped]
    if not pairs:
        raise DataError(f"no readable image/mask pairs under {str(base)!r}")
    if size is None:  # keep the images' own size (U-Net takes any), but one size for the whole set
        h0, w0 = pairs[0].shape
        other = next((i for i, p in enumerate(pairs) if p.shape != (h0, w0)), None)
        if other is not None:
            h1, w1 = pairs[other].shape
            raise DataError(f"images differ in size ({w0}x{h0} {str(files[0][0])!r}, {w1}x{h1} {str(files[other][0])!r}); "
                            f"set data.image_size to resize them all (masks with nearest neighbour)")
    top = max((p.top for p in pairs if p.top < IGNORE), default=-1)  # values above 255 are reported below
    names = _class_names(base, num_classes, top)
    check_values(pairs, [m for _, m in files], len(names),
                 "classes.txt" if (base / "classes.txt").is_file() else
                 "data.num_classes" if num_classes else "the masks' largest value")
    X, M = stack(pairs) if keep else streamed(pairs, files, channels, size, num_workers, skip_bad)
    if said:
        note(said)
    return SegImages(X, M, names, scale=255.0, palette=palette_of(pairs, len(names)))
