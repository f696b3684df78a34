"""Hold real `dlsem` processes at a chosen training step until the test lets them go.

hold_env(folder, after=K) returns an environment for subprocess.Popen: every Python process
started with it (a `dlsem train`, a sweep's member processes) imports a sitecustomize that
wraps Task.training_step: from the K+1-th step on, each step waits while folder/HOLD exists.
The test removes that file (release(folder)) and the processes run on. Nothing of dlseminar
changes: the wrapper is installed from outside, through PYTHONPATH.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

SITE = '''
import os, sys, time
_hold = os.environ.get("DLSEM_TEST_HOLD")
if _hold:
    _after = int(os.environ.get("DLSEM_TEST_HOLD_AFTER", "0"))

    class _Finder:
        """Wrap training_step as soon as dlseminar.tasks.base has been imported."""

        def find_spec(self, name, path=None, target=None):
            if name == "dlseminar.tasks.base":
                sys.meta_path.remove(self)
                import importlib.util
                spec = importlib.util.find_spec(name)
                loader = spec.loader
                orig_exec = loader.exec_module

                def exec_module(module):
                    orig_exec(module)
                    orig = module.Task.training_step
                    seen = [0]

                    def training_step(self, model, batch):
                        seen[0] += 1
                        if seen[0] > _after:
                            open(_hold + ".reached", "a").close()
                            while os.path.exists(_hold):
                                time.sleep(0.02)
                        return orig(self, model, batch)

                    module.Task.training_step = training_step

                loader.exec_module = exec_module
                return spec
            return None

    sys.meta_path.insert(0, _Finder())
'''


def hold_env(folder: Path, after: int = 0, **extra) -> dict:
    """An environment whose Python processes wait at training step after+1 while folder/HOLD exists."""
    folder = Path(folder)
    site = folder / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITE)
    (folder / "HOLD").touch()
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path, DLSEM_TEST_HOLD=str(folder / "HOLD"),
                DLSEM_TEST_HOLD_AFTER=str(after), **extra)


def wait_for(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def reached(folder: Path) -> bool:
    """Whether a held process has reached the step where it waits."""
    return (Path(folder) / "HOLD.reached").exists()


def release(folder: Path) -> None:
    (Path(folder) / "HOLD").unlink(missing_ok=True)
