"""Where a run writes: its directory (--out, or runs/<name>[-N]), claimed under the run lock, and its
config.yaml."""
from __future__ import annotations

import contextlib
from pathlib import Path

from . import io, runlock
from .config import Config
from .errors import ConfigError, UserError


def new_run_dir(cfg: Config, overwrite: bool) -> Path:
    """--out as given, else runs/<name>[-N]. A non-empty --out needs --overwrite, and then may hold only a
    previous run's files (clear_run removes them once the run starts) and none of the run's inputs
    (its config file, data.path): io.check_run_dir."""
    if cfg["out"]:
        d = io.check_run_dir(Path(cfg["out"]), overwrite, io.config_inputs(cfg))
    else:
        # `runs` a file: say which, as for --out
        d = io.check_run_dir(io.numbered_dir(Path("runs") / cfg["name"]), False, io.config_inputs(cfg))
    try:
        (d / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run directory {str(d)!r}: {e.strerror or e}") from None
    return d


def claim_run_dir(cfg: Config, overwrite: bool, held: contextlib.ExitStack) -> Path:
    """new_run_dir's choice, locked (runlock) before anything in it is cleared or written; the lock is
    released when `held` closes.

    --out that another process writes: refused, naming that process (also without --overwrite, where
    new_run_dir would only say that the folder is not empty). runs/<name>-N: two runs starting at the
    same moment may choose the same N; the one that does not get the lock chooses again."""
    out = Path(cfg["out"]) if cfg["out"] else None
    for _ in range(100):
        try:
            d = new_run_dir(cfg, overwrite)
        except ConfigError:
            who = out is not None and runlock.holder(out)
            if who:
                raise runlock.InUse(f"run directory {str(out)!r} is in use by {who}; wait for it or choose another --out") from None
            raise
        try:
            runlock.acquire(d)
        except runlock.InUse:
            if out is not None:
                raise
            continue  # new_run_dir now sees the other run's files there and chooses the next N
        if out is not None or _fresh(d):
            held.callback(runlock.release, d)
            return d
        runlock.release(d)  # a run that chose it too has finished there meanwhile: choose again
    raise UserError(f"could not claim a run directory for runs/{cfg['name']}-N: other runs keep taking them; use --out")


def _fresh(d: Path) -> bool:
    """Whether `d` holds nothing but an empty plots/ (what new_run_dir makes) and the lock."""
    try:
        return (all(p.name in (runlock.LOCK_NAME, "plots") for p in d.iterdir())
                and not any((d / "plots").iterdir()))
    except OSError:
        return False


def write_config(path: Path, cfg: Config) -> None:
    import yaml

    # data paths absolute: the run can be evaluated and resumed from any working directory
    io.write_text(path, yaml.safe_dump(cfg.absolute().to_dict(), sort_keys=False, default_flow_style=None))
