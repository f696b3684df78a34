"""Reading image files of any size and mode into uint8 tensors (Pillow), through one guarded opener.

Every image and mask file the datasets and `dlsem predict` read goes through `opened()`:

- a file that is empty, missing, not an image, truncated or otherwise undecodable stops with
  one DataError naming it;
- an image declaring more than MAX_PIXELS pixels (Pillow's own limit against decompression
  bombs, about 89 megapixels) is refused from its header, before anything is decoded. Pillow
  itself only *warns* between that limit and twice it, and decodes: here a warnings filter
  turns that warning into the same error;
- Pillow's other warnings while decoding (corrupt EXIF data, a malformed MPO, ...) are not
  printed: the image is read as far as it is valid;
- the EXIF orientation a camera writes is applied, so an image is read as every viewer
  (and every labelling tool in a browser) shows it;
- a JPEG that will be shrunk is decoded at a reduced scale (Pillow's draft mode): a 24
  megapixel photo for a 32 x 32 input decodes at 1/8 of its size, never in full.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MAX_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS: larger images are refused, not decoded
_FILTER_LOCK = threading.Lock()


class ImageError(DataError):
    """An image or mask file that cannot be read; `reason` is the why without the file name."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _guard_warnings(Image) -> None:
    """Pillow's decompression-bomb warning as an error, its decoding UserWarnings silent: two warnings
    filters at the front of the process's list, put back when a caller's catch_warnings dropped them
    (the check is one list comparison; the filters only touch warnings raised inside Pillow)."""
    want = [("error", None, Image.DecompressionBombWarning, None, 0),
            ("ignore", None, UserWarning, re.compile(r"PIL\."), 0)]
    if warnings.filters[:2] != want:
        with _FILTER_LOCK:
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def _bomb(path: Path, what: str, pixels: int | None, size=None) -> ImageError:
    declared = f"{size[0]}x{size[1]} = {pixels:,} pixels" if size else f"{pixels:,} pixels" if pixels else "too many pixels"
    why = (f"it declares {declared}, more than the {MAX_PIXELS:,} allowed (a decompression bomb, or a picture "
           f"far larger than any model input): shrink it first")
    return ImageError(f"{what} {str(path)!r}: {why}", why)


@contextlib.contextmanager
def opened(path: Path, what: str = "image", draft: tuple[int, int] | None = None):
    """`path` opened and decoded with Pillow, upright (EXIF orientation applied). Every way of failing to
    read it, also in the caller's block (a mode conversion, a resize), becomes one DataError naming the file.

    draft (width, height): the size the caller will resize to; a JPEG is then decoded at the smallest
    scale (1/2, 1/4, 1/8) still at least that large."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _guard_warnings(Image)
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{what} {str(path)!r} is empty (0 bytes)", "it is empty (0 bytes)")
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:  # from the header alone: nothing decoded yet
                raise _bomb(path, what, w * h, (w, h))
            orientation = im.getexif().get(0x0112, 1) if "exif" in im.info or im.format in ("JPEG", "TIFF", "WEBP") else 1
            if draft is not None and im.format == "JPEG":
                turned = orientation in (5, 6, 7, 8)  # 90-degree orientations swap width and height
                im.draft(None, draft[::-1] if turned else draft)
            im.load()  # decode now, so a truncated file fails here
            # exif_transpose copies even an upright image: only called for the orientations that turn
            yield ImageOps.exif_transpose(im) if orientation in (2, 3, 4, 5, 6, 7, 8) else im
    except DataError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{what} {str(path)!r} not found", "not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        raise _bomb(path, what, int(found.group(1)) if found else None) from None
    except MemoryError:
        raise ImageError(f"{what} {str(path)!r} is too large to decode in the free memory",
                         "too large to decode in the free memory") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as e:
        first = str(e).splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise ImageError(f"cannot read {what} {str(path)!r}: {first}", first) from None


def load_image(path: str | Path, channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """One image file -> (channels, H, W) uint8, resized to `size` (H, W) when given.

    Grayscale, RGB, RGBA and LA (composited on white), palette (with or without transparency),
    CMYK, 16-bit and 32-bit integer and float images are accepted; an animated image gives its
    first frame. An unreadable, truncated, empty or oversized file raises DataError naming it.
    """
    from PIL import Image

    with opened(Path(path), draft=None if size is None else (size[1], size[0])) as im:
        im = to_mode(im, channels)
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


def to_mode(im, channels: int):
    """Any Pillow mode -> L (channels 1) or RGB. Wide integer modes are scaled by their range, not by
    each image's own maximum: a dark 16-bit image stays dark."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # 16/32-bit integer or float grayscale
        a = np.asarray(im, dtype=np.float64)
        top = float(a.max()) if a.size else 0.0
        if im.mode == "F":
            scale = 255.0 if top <= 1.0 else 1.0  # floats in [0, 1], else taken as 0..255
        else:
            # I;16: the 16-bit range. I (32-bit): 0..255 as is, up to 65535 as 16 bits, wider by its own maximum
            scale = 255.0 / 65535.0 if im.mode.startswith("I;16") or 255 < top <= 65535 else 1.0 if top <= 255 else 255.0 / top
        im = Image.fromarray(np.clip(np.nan_to_num(a * scale), 0, 255).round().astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return im.convert("L" if channels == 1 else "RGB")


def image_files(paths) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise DataError(f"{str(p)!r} not found")
    if not out:
        raise DataError("no image files found in " + ", ".join(map(str, paths)))
    return out


def walk_files(d: Path):
    """Every file below d, recursively, in sorted order; hidden entries (.DS_Store, ._x.png from
    macOS, .ipynb_checkpoints, .git ...) and everything inside hidden folders skipped."""
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for n in sorted(filenames):
            if not n.startswith("."):
                yield Path(dirpath) / n


def declared_pixels(paths) -> int:
    """Pixels the image files declare in their headers, summed (nothing is decoded): what decoding them at
    their own sizes would take, for data.in_memory's estimate. A file whose header cannot be read counts 0
    (reading it for real says why)."""
    from PIL import Image

    _guard_warnings(Image)  # a header declaring a bomb raises (and counts 0) instead of warning
    total = 0
    for p in paths:
        try:
            with Image.open(p) as im:
                total += im.size[0] * im.size[1]
        except Exception:  # noqa: BLE001  (any failure: the real read reports it, in one line)
            continue
    return total
