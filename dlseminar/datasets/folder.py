"""Your own images: an ImageFolder-style tree, one sub-folder per class.

    data.path/
        cat/  a.jpg  b.png  more/c.webp ...
        dog/  ...

Class names are the sorted sub-folder names; images may sit in nested folders below
a class folder. Files are only read, never written.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..console import note
from ..errors import ConfigError, DataError
from ..registry import DATASETS
from ..data.files import Files, Paths, scan
from ..data.imagestats import image_sums
from .imageio import IMAGE_SUFFIXES, load_image, walk_files
from ..tasks.classification.data import Images


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")  # .DS_Store, ._x.png (macOS), .ipynb_checkpoints, .git ...


def _class_images(d: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) below a class folder, recursively, sorted; hidden entries skipped."""
    images, other = [], []
    for p in walk_files(d):
        (images if p.suffix.lower() in IMAGE_SUFFIXES else other).append(p)
    return images, other


@DATASETS.register("folder", kind="classification")
def folder(path=None, image_size=None, channels=3, skip_bad=False, in_memory="auto", num_workers=2):
    """Your images at data.path, one sub-folder per class (any size/mode; resized to data.image_size, default 32).

    Every image is decoded once into memory as uint8 (N, channels, size, size), or, when
    that would not fit (data.in_memory), streamed: decoded per batch by data.num_workers
    processes. A corrupt or empty image stops with an error naming it, unless
    data.skip_bad is true (then it is skipped with one counted note).
    """
    if path is None or str(path).strip() == "":
        raise DataError("dataset folder needs data.path (a folder with one sub-folder of images per class)")
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3 (got {channels})")
    size = image_size or 32
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data.path {str(path)!r} not found")
    if not root.is_dir():
        raise DataError(f"data.path {str(path)!r} is not a folder (folder needs one sub-folder of images per class)")

    entries = sorted(root.iterdir(), key=lambda p: p.name)
    class_dirs = [p for p in entries if p.is_dir() and not _hidden(p)]
    loose = [p for p in entries if p.is_file() and not _hidden(p)]
    if not class_dirs:
        raise DataError(f"no class sub-folders in {str(root)!r}; put each class's images in its own sub-folder "
                        f"(e.g. {root / 'cat'}, {root / 'dog'})")
    if len(class_dirs) < 2:
        raise DataError(f"{str(root)!r} has only one class sub-folder ({class_dirs[0].name!r}); "
                        f"classification needs at least 2")
    if loose:
        note(f"ignored {len(loose)} file{'s' if len(loose) != 1 else ''} at the top of {root} "
             f"(images must be inside a class sub-folder; first: {loose[0].name})")

    files: list[Path] = []
    labels: list[int] = []
    others: list[Path] = []
    for k, d in enumerate(class_dirs):
        imgs, other = _class_images(d)
        others += other
        if not imgs:
            raise DataError(f"class folder {str(d)!r} has no images "
                            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        files += imgs
        labels += [k] * len(imgs)
    if others:
        note(f"ignored {len(others)} non-image file{'s' if len(others) != 1 else ''} in the class folders "
             f"(first: {others[0]})")

    from ..memory import check_bytes, keep_in_memory

    # the decoded images, then their split copies: refused before the first file is decoded
    need = 2.0 * len(files) * channels * size * size
    what = f"{len(files):,} images at {channels}x{size}x{size}"
    read = ReadImage(channels, (size, size))
    keep, said = keep_in_memory(in_memory, lambda: need, f"folder: {what}", num_workers)
    if keep:
        check_bytes(need, f"decoding {what}", "use a smaller data.image_size, or data.in_memory: false to stream "
                                              "the images from their files")
        X = torch.empty((len(files), channels, size, size), dtype=torch.uint8)  # decoded once, kept in memory

        def decode(i: int) -> None:
            X[i] = read(files[i])[0]

        errors = scan(len(files), decode)
    else:  # streamed: each image read once now for its pixel sums (the training split's statistics)
        errors = scan(len(files), lambda i: image_sums(read(files[i])[0]))
        sums = [e for e in errors if not isinstance(e, DataError)]
        X = Files(Paths([f for f, e in zip(files, errors) if not isinstance(e, DataError)]), read,
                  (channels, size, size), sums=torch.tensor(sums, dtype=torch.int64).view(-1, 2, channels),
                  areas=torch.full((len(sums),), size * size, dtype=torch.int64), workers=num_workers,
                  skip_bad=skip_bad)
    bad = [(f, e) for f, e in zip(files, errors) if isinstance(e, DataError)]
    if bad and not skip_bad:
        raise DataError(f"{bad[0][1]}; fix or remove it, or pass --set data.skip_bad=true to skip unreadable images")
    y = torch.tensor(labels, dtype=torch.int64)
    if bad:
        note(f"skipped {len(bad)} unreadable image{'s' if len(bad) != 1 else ''} (first: {bad[0][0]})")
        keep = torch.tensor([not isinstance(e, DataError) for e in errors])
        X, y = (X if isinstance(X, Files) else X[keep]), y[keep]
        counts = torch.bincount(y, minlength=len(class_dirs))
        for d, n in zip(class_dirs, counts.tolist()):
            if n == 0:
                raise DataError(f"class folder {str(d)!r} has no readable images")
    if said:
        note(said)
    return Images(X, y, [d.name for d in class_dirs], scale=255.0)


class ReadImage:
    """One image file -> (uint8 (channels, H, W),) at `size`: how folder decodes, in memory or in a worker."""

    def __init__(self, channels: int, size: tuple[int, int]):
        self.channels, self.size = channels, size

    def __call__(self, path) -> tuple[torch.Tensor]:
        return (load_image(path, self.channels, self.size),)
