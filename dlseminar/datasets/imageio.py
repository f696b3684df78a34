"""Reading image files of any size and mode into fixed-size uint8 tensors (Pillow)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@contextlib.contextmanager
def opened(path: Path, what: str = "image"):
    """`path` opened and decoded with Pillow. Every way of failing to read it, also in the caller's
    block (a mode conversion, a resize), becomes one DataError naming the file: the one-line error."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            raise DataError(f"{what} {str(path)!r} is empty (0 bytes)")
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here
            yield im
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read {what} {str(path)!r}: {str(e).splitlines()[0][:100] if str(e) else type(e).__name__}") from None


def load_image(path: str | Path, channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """One image file -> (channels, H, W) uint8, resized to `size` (H, W) when given.

    Grayscale, RGB, RGBA (composited on white), palette and 16-bit images are accepted;
    an unreadable, truncated or empty file raises DataError naming it.
    """
    from PIL import Image

    with opened(Path(path)) as im:
        im = _to_mode(im, channels)
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


def _to_mode(im, channels: int):
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: rescale to 8 bits
        a = np.asarray(im, dtype=np.float64)
        hi = a.max() if a.max() > 0 else 1.0
        im = Image.fromarray((a / hi * 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
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
