"""dlseminar.io: the atomic writer and the rules for where a command may write."""
from __future__ import annotations

import os
import stat

import pytest

from dlseminar import io
from dlseminar.io.guards import RUN_FILES, inside, is_run_dir, run_file
from dlseminar.errors import ConfigError


def _temps(folder):
    return sorted(p.name for p in folder.rglob(".tmp-*"))


# ---------------------------------------------------------------- atomic writes
def test_write_text_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("old")
    io.write_text(p, "new ✓")
    assert p.read_text(encoding="utf-8") == "new ✓" and _temps(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path, error):
    p = tmp_path / "metrics.csv"
    p.write_text("old")
    with pytest.raises(type(error)):
        with io.atomic_open(p, "w") as f:
            f.write("half a fi")
            raise error
    assert p.read_text() == "old" and _temps(tmp_path) == []


def test_atomic_path_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    from PIL import Image

    with io.atomic_path(tmp_path / "x.png") as tmp:
        assert tmp.name.startswith(".tmp-") and tmp.suffix == ".png" and tmp.parent == tmp_path
        Image.new("L", (3, 2)).save(tmp)  # PIL picks the format from the suffix
    assert Image.open(tmp_path / "x.png").size == (3, 2) and _temps(tmp_path) == []


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_text(tmp_path / "config.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == 0o644


# ---------------------------------------------------------------- what a path is
def _run(d):
    (d / "plots").mkdir(parents=True)
    for n in RUN_FILES:
        (d / n).write_text(n)
    (d / "plots" / "curves.png").write_bytes(b"png")
    return d


def test_same_path_and_inside_see_through_dotdot_and_symlinks(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "c.yaml").write_text("x")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "a" / "c.yaml")
    assert io.same_path(tmp_path / "a" / ".." / "a" / "c.yaml", tmp_path / "a" / "c.yaml")
    assert io.same_path(tmp_path / "link.yaml", tmp_path / "a" / "c.yaml")
    assert inside(tmp_path / "link.yaml", tmp_path / "a") and not inside(tmp_path / "a", tmp_path / "a" / "c.yaml")


def test_run_dir_and_its_files(tmp_path):
    run = _run(tmp_path / "run")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.yaml").write_text("a recipe")
    assert is_run_dir(run) and not is_run_dir(tmp_path / "configs")
    assert run_file(run / "config.yaml") == run and run_file(run / "plots" / ".." / "last.pt") == run
    assert run_file(tmp_path / "configs" / "config.yaml") is None  # a config.yaml outside a run is the user's
    assert run_file(tmp_path / "anything.pt") == tmp_path  # a checkpoint anywhere


# ---------------------------------------------------------------- check_file
@pytest.mark.parametrize("target,kwargs,words", [
    ("run/last.pt", {"overwrite": True}, "belongs to the run"),
    ("run/summary.json", {"overwrite": True, "own": True}, "belongs to the run"),
    ("notes.txt", {}, "already exists; pass --overwrite"),
    ("c.yaml", {"overwrite": True}, "is the config being read"),
    ("link.yaml", {"overwrite": True}, "is the config being read"),
    ("notes.txt/x.html", {"overwrite": True}, "is not a directory"),
    ("run", {"overwrite": True}, "is a directory"),
])
def test_check_file_refuses(tmp_path, target, kwargs, words):
    _run(tmp_path / "run")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "c.yaml").write_text("a: 1")
    (tmp_path / "link.yaml").symlink_to("c.yaml")
    with pytest.raises(ConfigError, match=words):
        io.check_file(tmp_path / target, inputs=[(tmp_path / "c.yaml", "the config being read")], **kwargs)


def test_check_file_allows_new_files_own_files_and_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    io.check_file(tmp_path / "new" / "deeper" / "r.html")
    io.check_file(tmp_path / "notes.txt", overwrite=True)
    io.check_file(tmp_path / "notes.txt", own=True)


# ---------------------------------------------------------------- check_dir, check_run_dir, clear_run
def test_check_dir(tmp_path):
    run = _run(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "c.yaml").write_text("a: 1")
    (tmp_path / "empty").mkdir()
    inputs = [(tmp_path / "mine" / "c.yaml", "the config being read")]
    io.check_dir(tmp_path / "empty")
    io.check_dir(tmp_path / "new" / "folder")
    io.check_dir(tmp_path / "mine", own=True)  # holds the command's marker: a rerun
    for d, kw, words in [(run, {"overwrite": True}, "is a run directory"),
                         (tmp_path / "mine", {}, "not empty; pass --overwrite"),
                         (tmp_path / "mine", {"overwrite": True, "inputs": inputs}, "holds the config being read"),
                         (tmp_path / "mine" / "c.yaml", {"inputs": inputs}, "is the config being read"),
                         (tmp_path / "mine" / "c.yaml", {}, "exists and is not a directory")]:
        with pytest.raises(ConfigError, match=words):
            io.check_dir(d, **kw)


def test_check_run_dir_overwrites_only_a_previous_run(tmp_path):
    run = _run(tmp_path / "run")
    (run / "train.log").write_text("log")
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"ev")
    (run / ".tmp-last.pt.abc").write_bytes(b"half")
    with pytest.raises(ConfigError, match="not empty; pass --overwrite"):
        io.check_run_dir(run, overwrite=False)
    io.check_run_dir(run, overwrite=True)
    (run / "plots" / "my notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"files a run does not write \(plots/my notes.txt\)"):
        io.check_run_dir(run, overwrite=True)


def test_clear_run_removes_a_runs_files_only(tmp_path):
    run = _run(tmp_path / "run")
    (run / "train.log").write_text("a sweep appends here")
    (run / "report.html").write_text("<p>old</p>")
    (run / ".lock").write_text("")
    removed = io.clear_run(run)
    assert sorted(removed) == sorted([*RUN_FILES, "report.html", "plots/curves.png"])
    assert sorted(p.name for p in run.iterdir()) == [".lock", "plots", "train.log"]


# ---------------------------------------------------------------- staged
def test_staged_moves_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_text("the user's")
    with pytest.raises(ConfigError, match="b.png' already exists"):
        with io.staged(out) as stage:
            (stage / "a.png").write_text("new a")
            (stage / "b.png").write_text("new b")
    assert sorted(p.name for p in out.iterdir()) == ["b.png"] and (out / "b.png").read_text() == "the user's"
    with io.staged(out, overwrite=True) as stage:
        (stage / "a.png").write_text("new a")
        (stage / "b.png").write_text("new b")
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"] and (out / "b.png").read_text() == "new b"
    with pytest.raises(ConfigError, match="is an input image"):
        with io.staged(out, overwrite=True, inputs=[(out / "a.png", "an input image")]) as stage:
            (stage / "a.png").write_text("newer")
    assert (out / "a.png").read_text() == "new a" and _temps(out) == []


def test_staged_cleans_up_on_ctrl_c(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with io.staged(tmp_path) as stage:
            (stage / "a.png").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
