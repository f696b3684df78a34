"""A hostile environment: what the shell hands a command besides its arguments.

Terminal widths that are no width (COLUMNS=0 or abc, TERMINAL_WIDTH=abc), TERM=dumb, NO_COLOR, an
ASCII-only or C locale meeting a non-ASCII path in an error line, a working directory where the
default `runs/` cannot be created, HOME unset, TMPDIR missing, a device that is not there
(CUDA_VISIBLE_DEVICES="" with --device cuda, --device mps), torchrun's RANK and WORLD_SIZE left in
a shell, and matplotlib's MPLBACKEND and MPLCONFIGDIR set to nonsense. Each either works (exit 0 and
its output or files) or ends in one `error:` line (tests/hostile/_harness.py).

What a fresh interpreter reads at start (the locale, PYTHONIOENCODING, matplotlib's variables, CUDA's,
typer's TERMINAL_WIDTH) is tried in a real process; `--help` and config errors start no torch and take
a fraction of a second. The terminal cases run under a pseudo-terminal 100 columns wide. The rest run
in process. Successful runs with non-ASCII names under LANG=C and COLUMNS into a pipe are
tests/hostile/test_signals_pipes.py's.
"""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

import pytest
import torch
from _harness import copy_case, hostile

RECIPE = "data:\n  name: xor\n  n_samples: 100\ntrain:\n  epochs: 1\nlogging:\n  plots: false\n"
PLOTS = ("--set", "logging.plots=true", "--set", "logging.boundary_gif=false")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;)")  # an SGR sequence that sets a foreground colour


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    from dlseminar import run
    from dlseminar.config import resolve

    d = tmp_path_factory.mktemp("env-src")
    run.train(resolve(sets=["data.name=xor", "data.n_samples=100", "train.epochs=1", "logging.plots=false",
                            f"out={d / 'run'}"]))
    (d / "c.yaml").write_text(RECIPE)
    (d / "notes.txt").write_text("the user's own notes\n")
    return d


@pytest.fixture
def root(src, tmp_path):
    return copy_case(src, tmp_path)


def on_a_terminal(args, cwd: Path, env: dict, timeout: int = 120) -> tuple[int, str]:
    """Run `python -m dlseminar *args` with stdout and stderr on a pseudo-terminal of 24 x 100; (rc, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    e = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    proc = subprocess.Popen([sys.executable, "-m", "dlseminar", *args], cwd=cwd, env={**e, "TERM": "xterm", **env},
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout} s: {args}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout), b"".join(chunks).decode("utf-8", "replace")


# ---------------------------------------------------------------- widths, colours, locales (real processes)
# (id, environment, command line, exit code, words: of the error line, or of stdout on success)
REAL = [
    ("columns-zero-help", {"COLUMNS": "0"}, ["--help"], 0, ["Usage: dlsem", "lr-find"]),
    ("columns-words-help", {"COLUMNS": "abc"}, ["--help"], 0, ["Usage: dlsem", "lr-find"]),
    ("terminal-width-words-help", {"TERMINAL_WIDTH": "abc"}, ["train", "--help"], 0, ["Usage: dlsem train", "--resume"]),
    ("terminal-width-zero-help", {"TERMINAL_WIDTH": "0"}, ["--help"], 0, ["Usage: dlsem", "lr-find"]),
    ("ascii-error-line-with-non-ascii-path", {"PYTHONIOENCODING": "ascii"}, ["config", "show", "müll.yaml"], 2,
     ["config file 'm", "ll.yaml' not found"]),
    ("c-locale-error-line-with-non-ascii-path", {"LANG": "C", "LC_ALL": "C"}, ["config", "show", "müll.yaml"], 2,
     ["config file 'm", "ll.yaml' not found"]),
    ("c-locale-and-ascii-error-line", {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii"},
     ["compare", "nosuch-ü"], 2, ["'nosuch-", "does not exist"]),
    ("no-cuda-devices-asked-for-cuda", {"CUDA_VISIBLE_DEVICES": ""}, ["train", "c.yaml", "--device", "cuda"], 2,
     ["device cuda requested but CUDA is not available here", "--device cpu or auto"]),
]


@pytest.mark.parametrize("env,args,rc,words", [c[1:] for c in REAL], ids=[c[0] for c in REAL])
def test_what_a_fresh_interpreter_reads(dlsem, root, env, args, rc, words):
    r = hostile(dlsem, root, *args, rc=rc, words=words if rc == 2 else (), env=env, real=True)
    if rc == 0:
        for w in words:
            assert w in r.out, f"{w!r} not in stdout\n{r}"


def test_matplotlib_backend_nonsense_still_draws(dlsem, root):
    """matplotlib raises at import on an unknown MPLBACKEND: the plots are files (Agg) whatever it says."""
    hostile(dlsem, root, "train", "c.yaml", "--out", "r", *PLOTS, rc=0, env={"MPLBACKEND": "nonsense"}, real=True)
    assert sorted(p.name for p in (root / "r" / "plots").iterdir()) == ["confusion_matrix.png", "curves.png",
                                                                        "decision_boundary.png", "network.png"]


def test_matplotlib_config_dir_a_file_still_draws(dlsem, root, monkeypatch):
    """MPLCONFIGDIR a file (and HOME unset): matplotlib works from a temporary folder; the run and its plots too."""
    monkeypatch.delenv("HOME", raising=False)
    r = hostile(dlsem, root, "train", "c.yaml", "--out", "r", *PLOTS, rc=0, env={"MPLCONFIGDIR": "notes.txt"},
                real=True)
    assert "run directory: r" in r.out, r
    assert (root / "r" / "plots" / "curves.png").stat().st_size > 1000
    assert (root / "notes.txt").read_text() == "the user's own notes\n"


# ---------------------------------------------------------------- on a terminal
def test_columns_zero_on_a_terminal_uses_the_terminal_width(root):
    """rich takes COLUMNS=0 as a width of 0 and prints nothing at all: it is ignored, the terminal's 100 apply."""
    rc, out = on_a_terminal(["datasets"], root, {"COLUMNS": "0"})
    assert rc == 0, out
    lines = [ANSI.sub("", ln) for ln in out.splitlines() if "│" in ln]
    assert any("xor" in ln for ln in lines), out
    assert max(len(ln.rstrip()) for ln in lines) == 100, out  # the table fills the terminal, no more


@pytest.mark.parametrize("env", [{"TERM": "dumb"}, {"NO_COLOR": "1"}], ids=["term-dumb", "no-color"])
def test_no_colour_when_the_terminal_says_so(root, env):
    rc, out = on_a_terminal(["train", "c.yaml", "--out", "r"], root, env)
    assert rc == 0 and "run directory: r" in out, out
    assert not COLOR.search(out), repr(out[:400])
    if env.get("TERM") == "dumb":  # no cursor movement or styles either: plain lines
        assert "\x1b[" not in out, repr(out[:400])


# ---------------------------------------------------------------- in process
def test_rank_without_torchrun_still_says_its_error(dlsem, root):
    """A RANK left in the shell (no WORLD_SIZE): this is the only process, and it talks."""
    hostile(dlsem, root, "config", "show", "missing.yaml", rc=2, words=["config file 'missing.yaml' not found"],
            env={"RANK": "1"})


def test_rank_without_torchrun_trains_and_writes_its_run(dlsem, root):
    r = hostile(dlsem, root, "train", "c.yaml", "--out", "r", rc=0, env={"RANK": "1"})
    assert "run directory: r" in r.out, r
    assert (root / "r" / "summary.json").is_file() and (root / "r" / "best.pt").is_file()


def test_world_size_without_torchrun_is_one_line(dlsem, root):
    hostile(dlsem, root, "train", "c.yaml", "--out", "r", rc=2, env={"RANK": "1", "WORLD_SIZE": "2"},
            words=["WORLD_SIZE=2 is set but MASTER_ADDR and MASTER_PORT not", "--devices N", "unset WORLD_SIZE"])
    assert not (root / "r" / "best.pt").exists()


def test_missing_tmpdir_is_no_obstacle(dlsem, root, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches its folder: let it look again
    r = hostile(dlsem, root, "train", "c.yaml", "--out", "r", *PLOTS, rc=0, env={"TMPDIR": str(root / "gone")})
    assert "run directory: r" in r.out and (root / "r" / "plots" / "curves.png").is_file(), r
    assert not (root / "gone").exists()


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_there_is_none(dlsem, root):
    hostile(dlsem, root, "train", "c.yaml", "--device", "mps", rc=2,
            words=["device mps requested but Apple MPS is not available here", "--device cpu or auto"])


DEFAULT_OUT = [  # the command's default folder is under runs/, which here is a file
    ("train", ["train", "c.yaml"], "cannot create run directory 'runs/c'"),
    ("sweep", ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2"], "cannot create --out 'runs/c-sweep'"),
    ("lr-find", ["lr-find", "c.yaml", "--steps", "10"], "cannot create --out 'runs/c-lr-find'"),
    ("compare", ["compare", "run"], "cannot create --out 'runs/compare'"),
    ("zoo", ["zoo", "--models", "cnn", "--epochs", "1", "--set", "data.n_samples=40"],
     "cannot create --out 'runs/zoo-shapes'"),
]


@pytest.mark.parametrize("args,words", [c[1:] for c in DEFAULT_OUT], ids=[c[0] for c in DEFAULT_OUT])
def test_default_output_folder_that_cannot_be_made(dlsem, root, args, words):
    """A working directory where runs/ cannot be created (runs is a file: refused for root too):
    one line before any work, the file untouched."""
    (root / "runs").write_text("not a folder\n")
    r = hostile(dlsem, root, *args, rc=2, words=[words, "'runs' is not a directory"])
    assert "steps" not in r.out  # lr-find: refused before the range test, not after it


@pytest.mark.skipif(IS_ROOT, reason="root ignores folder modes (the runs-is-a-file cases stand in)")
@pytest.mark.parametrize("args", [c[1] for c in DEFAULT_OUT[:4]], ids=[c[0] for c in DEFAULT_OUT[:4]])
def test_read_only_working_directory(dlsem, root, args):
    root.chmod(0o555)
    try:
        hostile(dlsem, root, *args, rc=2, words=["not writable"])
    finally:
        root.chmod(0o755)
