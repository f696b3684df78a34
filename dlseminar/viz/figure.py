"""The matplotlib backend choice and the one way a figure is written to disk."""
from __future__ import annotations

from pathlib import Path

DPI = 100  # every PNG the project writes


def matplotlib_agg():
    """matplotlib, drawing into files (Agg) whatever the environment says. MPLBACKEND is read by
    `import matplotlib` itself, which raises on an unknown name: it is hidden from that first import."""
    import os
    import sys

    if "matplotlib" not in sys.modules:
        backend = os.environ.pop("MPLBACKEND", None)
        try:
            import matplotlib  # noqa: F401
        finally:
            if backend is not None:
                os.environ["MPLBACKEND"] = backend  # child processes see the user's environment unchanged
    import matplotlib

    matplotlib.use("Agg")
    return matplotlib


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    matplotlib_agg()
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> None:
    """Write `fig` to `path` (format from its suffix) atomically, then close it: a reader or a crash
    sees the old file or the whole new one, never half a PNG."""
    from .. import io

    path = Path(path)
    try:
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format=path.suffix.lstrip(".") or None)
    finally:
        pyplot().close(fig)
