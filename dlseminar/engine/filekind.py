"""What a file given as a checkpoint really is, and why torch.load refused it, in plain words.

`checkpoint.load` asks `not_torch(path)` before reading: a file whose first bytes show another format
(a picture, a text file, a pickle, TorchScript, ONNX, safetensors, ...) is named as such, without
handing it to the unpickler. `load_failed(path, exc)` turns what torch.load raised on a PyTorch file
into one short reason, instead of torch's paragraph about weights_only.
"""
from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

# torch.save's legacy (non-zip) format starts with the pickled magic number 0x1950a86a20f9469cfc6c
TORCH_LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
ZIP = (b"PK\x03\x04", b"PK\x05\x06")
MAGIC = [  # (leading bytes, what the file is)
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 model?)"),
    (b"\x93NUMPY", "a NumPy .npy array"), (b"\x1f\x8b", "a gzip-compressed file"), (b"%PDF", "a PDF document"),
    (b"\x7fELF", "a program (ELF executable)"),
]
ONNX_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}  # ModelProto fields 2..8 that follow ir_version


def not_torch(path: Path) -> str | None:
    """Why `path` is no PyTorch file ("is a PNG image, not a checkpoint"), or None when it starts like one
    (torch.save's zip archive holding a data.pkl, or its legacy pickle format).

    Only the first bytes (and a zip's table of contents) are read: cheap even for a large file.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(ZIP):
        return _zip_kind(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        if head.startswith(TORCH_LEGACY):
            return None
        return "is a Python pickle, not a PyTorch checkpoint; dlseminar never loads pickles (they can run code)"
    extra = [(b"RIFF", "a WebP image")] if head[8:12] == b"WEBP" else []
    extra += [(b"BM", "a BMP image")] if head[6:10] == bytes(4) else []  # two letters alone could start a text
    for magic, what in [*MAGIC, *extra]:
        if head.startswith(magic):
            # a picture where the checkpoint belongs: most often `dlsem predict` with its arguments swapped
            order = " (the checkpoint comes first: dlsem predict CKPT IMAGE...)" if what.endswith(" image") else ""
            return f"is {what}, not a checkpoint{order}"
    if len(head) >= 10 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size:
        return "is a safetensors file, not a dlseminar checkpoint (it holds weights only, without the run's config)"
    if len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x20 and head[2] in ONNX_TAGS:
        return "is an ONNX model, not a dlseminar checkpoint"
    text = _text_start(head)
    if text is not None:
        if text.startswith("version https://git-lfs"):
            return "is a Git LFS pointer, not the checkpoint itself: fetch the real file (git lfs pull)"
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"is a text file, not a checkpoint (it begins {first!r})"
    # torch.save writes only the two formats above: the unpickler need not see anything else
    return "is not a PyTorch file (its first bytes match no known format); is it the right file?"


def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "is truncated or corrupt (not a complete PyTorch file); copy it again or use the run's other checkpoint"
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return ("is a TorchScript model (torch.jit.save), not a dlseminar checkpoint; "
                "use the best.pt or last.pt that dlsem train wrote")
    if any(n.endswith("data.pkl") for n in names):
        return None
    if names and all(n.endswith(".npy") for n in names):
        return "is a NumPy .npz archive, not a checkpoint"
    return "is a zip archive, not a PyTorch checkpoint"


def _text_start(head: bytes) -> str | None:
    """The file's start as text when it is text (UTF-8, no NUL, hardly any control characters)."""
    if not head or b"\x00" in head:
        return None
    for cut in range(4):  # a multi-byte character may be split at the 4096-byte boundary
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    odd = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
    return text if odd <= len(text) // 100 else None


def load_failed(exc: BaseException) -> str:
    """Why torch.load could not read a file that starts like a PyTorch checkpoint."""
    msg = str(exc)
    # torch's weights-only unpickler names the class it refuses ("GLOBAL x.y" blocked or not allowed,
    # "Can only build Tensor ... but got"); garbage in the pickle is an "Unsupported operand" instead
    if "GLOBAL" in msg or "allowlisted" in msg:
        m = re.search(r"GLOBAL ([\w.]+)", msg)
        cls = f" such as {m.group(1)}" if m else ""
        return (f"is a PyTorch file that holds code objects (pickled classes{cls}), which dlseminar refuses to "
                f"load: a checkpoint may hold only plain tensors and numbers")
    if "TorchScript" in msg:
        return "is a TorchScript model (torch.jit.save), not a dlseminar checkpoint"
    return "is truncated or corrupt (not a complete PyTorch file); copy it again or use the run's other checkpoint"
