"""All-or-nothing output folders: a command's files appear together, each checked like any output, or none do."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .atomic import TMP_PREFIX, fsync_dir
from .guards import Inputs, check_file


@contextlib.contextmanager
def staged(folder: str | Path, *, overwrite: bool = False, inputs: Inputs = (), option: str = "--out") -> Iterator[Path]:
    """Write a command's files into a hidden folder inside `folder`, then move each into `folder` only if
    none of them would replace what check_file refuses: all of them, or none. For outputs whose names
    the writer decides (predict's <stem>_mask.png, feature maps). Yields the staging folder; its files
    are moved to the same relative path under `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=folder))
    try:
        yield stage
        moves = [(p, folder / p.relative_to(stage)) for p in sorted(stage.rglob("*")) if p.is_file()]
        for _, target in moves:
            check_file(target, option=option, overwrite=overwrite, inputs=inputs, hint=f"choose another {option} folder")
        for p, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)
        fsync_dir(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
