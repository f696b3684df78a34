"""Shared fixtures: run the real `dlsem` CLI in a subprocess, in a temporary folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    def __repr__(self):
        return f"rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


@pytest.fixture
def dlsem(tmp_path, monkeypatch, capsys):
    """dlsem(*args) -> Result of the real CLI entry point, with the working directory in tmp_path.

    By default dlseminar.cli.main() runs inside the test process (what `python -m dlseminar`
    calls): a fresh interpreter per call would add ~3 s of imports each, most of the suite's
    time. Anything that escapes main() fails the test as the traceback a user would see.
    real=True runs `python -m dlseminar` in a subprocess instead.
    """
    from dlseminar.cli import main

    def run(*args, cwd=None, timeout=300, env=None, real=False):
        if real:
            e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
            proc = subprocess.run([sys.executable, "-m", "dlseminar", *map(str, args)], cwd=cwd or tmp_path,
                                  capture_output=True, text=True, timeout=timeout, env=e)
            return Result(proc)
        with monkeypatch.context() as m:
            m.chdir(cwd or tmp_path)
            for k, v in (env or {}).items():
                m.setenv(k, v)
            m.setattr(sys, "argv", ["dlsem", *map(str, args)])
            capsys.readouterr()
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            out, err = capsys.readouterr()
        return Result(subprocess.CompletedProcess(args, code, out, err))

    return run


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def metrics_rows(run_dir: Path, drop=("seconds",)) -> list[dict]:
    import csv

    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]
