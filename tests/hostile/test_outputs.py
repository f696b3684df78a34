"""Hostile outputs: no command replaces a file the user did not ask to replace, and none writes an input.

Every command that writes (`train --out`, `report --out`, `lr-find --write/--out`, `predict --out`,
`sweep/compare/zoo --out`) against every kind of existing target: a user's file, a run's checkpoint,
config, metrics or summary, a folder, the command's own input, a symlink to an input, a path under a
file, a read-only folder; with and without --overwrite. The harness checks the exit code, the one
error line and that every file that existed before is unchanged (except `may_change`).

The inputs are built once per module (a 1-epoch xor run with plots, a tiny U-Net, a 2-member sweep,
a recipe, a CSV, an image folder) and copied into each case's folder.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _harness import hostile
from PIL import Image

RECIPE = """# a tiny recipe: xor, one epoch
data:
  name: xor
  n_samples: 200
train:
  epochs: 1
logging:
  plots: false
"""
SWEEP = ("sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", "sw")
STEPS = ("--steps", "10")  # lr-find: the refusals come before the test; keep the rest short
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """The inputs every case starts from (copied per case: a case may write)."""
    from dlseminar import run, sweep
    from dlseminar.config import resolve

    d = tmp_path_factory.mktemp("outputs-src")
    (d / "c.yaml").write_text(RECIPE)
    (d / "notes.txt").write_text("the user's own notes\n")
    rng = np.random.default_rng(0)
    rows = ["a,b,y"] + [f"{x:.3f},{y:.3f},{int(x * y > 0)}" for x, y in rng.normal(size=(60, 2))]
    (d / "dd").mkdir()
    (d / "dd" / "d.csv").write_text("\n".join(rows) + "\n")
    (d / "imgs").mkdir()
    for name, size in (("a", (20, 24)), ("b", (17, 31))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(d / "imgs" / f"{name}.png")
    for cls in ("cat", "dog"):  # a folder dataset (data.path is a directory)
        (d / "pets" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / "pets" / cls / f"{i}.png")
    run.train(resolve(d / "c.yaml", ["logging.plots=true", "logging.boundary_gif=false", f"out={d / 'run'}"]))
    run.train(resolve(sets=["data.name=shapes_seg", "data.n_samples=40", "data.image_size=32", "model.name=unet",
                            "model.depth=1", "model.base_width=2", "train.epochs=1", "logging.plots=false",
                            f"out={d / 'seg'}"]))
    cwd = Path.cwd()
    os.chdir(d)
    try:
        sweep.sweep(Path("c.yaml"), ["optim.lr=0.1,0.2"], [], 1, "sw", echo=lambda line: None)
    finally:
        os.chdir(cwd)
    assert sorted(p.name for p in (d / "run" / "plots").iterdir())  # report cases embed them
    return d


@pytest.fixture
def root(src, tmp_path):
    dst = tmp_path / "case"
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---------------------------------------------------------------- case preparations
def _symlink(name, target):
    def prep(r: Path):
        (r / name).symlink_to(target)
    return prep


def _write(name, text="old\n"):
    def prep(r: Path):
        (r / name).parent.mkdir(parents=True, exist_ok=True)
        (r / name).write_text(text)
    return prep


def _mkdir(name):
    def prep(r: Path):
        (r / name).mkdir(parents=True, exist_ok=True)
    return prep


def _copy(a, b):
    def prep(r: Path):
        shutil.copy(r / a, r / b)
    return prep


def _all(*preps):
    def prep(r: Path):
        for p in preps:
            p(r)
    return prep


def _readonly(name):
    def prep(r: Path):
        (r / name).mkdir(parents=True, exist_ok=True)
        (r / name).chmod(0o555)
    return prep


def _plot(r: Path) -> str:
    return "run/plots/" + sorted(p.name for p in (r / "run" / "plots").iterdir())[0]


RUN = ["run/config.yaml", "run/last.pt", "run/best.pt", "run/metrics.csv", "run/summary.json"]
NOTES = "already exists"  # the words of "exists, pass --overwrite"
BELONGS = "belongs to the run"

# (id, preparation, command line, exit code, words of the error line, files the command may change)
CASES = [
    # ---- report --out
    *[(f"report-into-{f.split('/')[1]}", None, ["report", "run", "--out", f], 2, [BELONGS], ()) for f in RUN],
    *[(f"report-into-{f.split('/')[1]}-overwrite", None, ["report", "run", "--out", f, "--overwrite"], 2, [BELONGS], ())
      for f in RUN],
    ("report-into-run-file-dotdot", None, ["report", "run", "--out", "run/plots/../last.pt", "--overwrite"], 2, [BELONGS], ()),
    ("report-into-sweep-member-checkpoint", None, ["report", "sw", "--out", "sw/optim.lr=0.1/last.pt", "--overwrite"], 2,
     [BELONGS], ()),
    ("report-into-a-checkpoint-anywhere", _copy("run/last.pt", "weights.pt"),
     ["report", "run", "--out", "weights.pt", "--overwrite"], 2, [BELONGS], ()),
    ("report-into-user-file", None, ["report", "run", "--out", "notes.txt"], 2, [NOTES, "--overwrite"], ()),
    ("report-into-user-file-overwrite", None, ["report", "run", "--out", "notes.txt", "--overwrite"], 0, [], ("notes.txt",)),
    ("report-into-its-plots", None, ["report", "run", "--out", "PLOT", "--overwrite"], 2,
     ["inside the directory being reported"], ()),
    ("report-via-symlink-to-run-config", _symlink("link.html", "run/config.yaml"),
     ["report", "run", "--out", "link.html", "--overwrite"], 2, [BELONGS], ()),
    ("report-default-symlinked-to-checkpoint", _symlink("run/report.html", "last.pt"), ["report", "run"], 2, [BELONGS], ()),
    ("report-replaces-a-symlink-not-its-target", _symlink("link.html", "c.yaml"),
     ["report", "run", "--out", "link.html", "--overwrite"], 0, [], ()),
    ("report-default-is-its-own", _write("run/report.html", "<p>old report</p>"), ["report", "run"], 0, [],
     ("run/report.html",)),
    ("report-under-a-file", None, ["report", "run", "--out", "notes.txt/r.html"], 2, ["not a directory"], ()),
    ("report-into-a-folder", None, ["report", "run", "--out", "imgs"], 2, ["is a directory"], ()),
    # ---- train --out
    ("train-into-run", None, ["train", "c.yaml", "--out", "run"], 2, ["not empty", "--overwrite"], ()),
    ("train-into-a-file", None, ["train", "c.yaml", "--out", "notes.txt"], 2, ["not a directory"], ()),
    ("train-into-its-recipe", None, ["train", "c.yaml", "--out", "c.yaml", "--overwrite"], 2,
     ["is the config being read"], ()),
    ("train-under-a-file", None, ["train", "c.yaml", "--out", "notes.txt/run"], 2, ["not a directory"], ()),
    ("train-overwrite-holding-its-config", None, ["train", "run/config.yaml", "--out", "run", "--overwrite"], 2,
     ["holds the config being read"], ()),
    ("train-overwrite-config-dotdot", None, ["train", "run/../run/config.yaml", "--out", "./run/", "--overwrite"], 2,
     ["holds the config being read"], ()),
    ("train-overwrite-config-symlinked-in", _symlink("lnk.yaml", "run/config.yaml"),
     ["train", "lnk.yaml", "--out", "run", "--overwrite"], 2, ["holds the config being read"], ()),
    ("train-overwrite-holding-its-csv", None,
     ["train", "--data", "csv", "--set", "data.path=dd/d.csv", "--epochs", "1", "--out", "dd", "--overwrite"], 2,
     ["holds the data being read", "d.csv"], ()),
    ("train-into-its-image-folder", None,
     ["train", "--data", "folder", "--set", "data.path=pets", "--set", "data.image_size=8", "--model", "cnn",
      "--epochs", "1", "--out", "pets/run"], 2, ["is inside the data being read"], ()),
    ("train-overwrite-user-files", _write("run/notes.txt"), ["train", "c.yaml", "--out", "run", "--overwrite"], 2,
     ["files a run does not write", "notes.txt"], ()),
    ("train-overwrite-a-sweep", None, ["train", "c.yaml", "--out", "sw", "--overwrite"], 2,
     ["files a run does not write", "sweep.csv"], ()),
    # ---- lr-find --write / --out
    ("lr-find-write-its-recipe", None, ["lr-find", "c.yaml", *STEPS, "--write", "c.yaml"], 2,
     ["is the config being tested"], ()),
    ("lr-find-write-its-recipe-overwrite", None, ["lr-find", "c.yaml", *STEPS, "--write", "c.yaml", "--overwrite"], 2,
     ["is the config being tested"], ()),
    ("lr-find-write-recipe-dotdot", None, ["lr-find", "imgs/../c.yaml", *STEPS, "--write", "./c.yaml", "--overwrite"], 2,
     ["is the config being tested"], ()),
    ("lr-find-write-symlink-to-recipe", _symlink("l.yaml", "c.yaml"),
     ["lr-find", "c.yaml", *STEPS, "--write", "l.yaml", "--overwrite"], 2, ["is the config being tested"], ()),
    ("lr-find-write-its-csv", None, ["lr-find", "c.yaml", *STEPS, "--set", "data.name=csv", "--set", "data.path=dd/d.csv",
                                     "--write", "dd/d.csv", "--overwrite"], 2, ["the data being read"], ()),
    ("lr-find-write-user-file", None, ["lr-find", "c.yaml", *STEPS, "--write", "notes.txt"], 2, [NOTES, "--overwrite"], ()),
    ("lr-find-write-run-config", None, ["lr-find", "c.yaml", *STEPS, "--write", "run/config.yaml", "--overwrite"], 2,
     [BELONGS], ()),
    ("lr-find-write-checkpoint", None, ["lr-find", "c.yaml", *STEPS, "--write", "run/best.pt", "--overwrite"], 2,
     [BELONGS], ()),
    ("lr-find-write-a-folder", None, ["lr-find", "c.yaml", *STEPS, "--write", "imgs"], 2, ["is a directory"], ()),
    ("lr-find-out-run", None, ["lr-find", "c.yaml", *STEPS, "--out", "run", "--overwrite"], 2, ["is a run directory"], ()),
    ("lr-find-out-user-folder", None, ["lr-find", "c.yaml", *STEPS, "--out", "imgs"], 2, ["not empty", "--overwrite"], ()),
    ("lr-find-out-overwrite-holding-recipe", None, ["lr-find", "c.yaml", *STEPS, "--out", ".", "--overwrite"], 2,
     ["holds the config being tested"], ()),
    ("lr-find-out-a-file", None, ["lr-find", "c.yaml", *STEPS, "--out", "notes.txt"], 2, ["not a directory"], ()),
    # ---- predict --out (a U-Net: <stem>_mask.png and <stem>_overlay.png)
    ("predict-next-to-its-images", None, ["predict", "seg/best.pt", "imgs", "--out", "imgs"], 0, [], ()),
    ("predict-onto-an-input-image", _copy("imgs/a.png", "imgs/a_mask.png"),
     ["predict", "seg/best.pt", "imgs", "--out", "imgs"], 2, ["is an input image", "a_mask.png"], ()),
    ("predict-onto-an-input-image-overwrite", _copy("imgs/a.png", "imgs/a_mask.png"),
     ["predict", "seg/best.pt", "imgs", "--out", "imgs", "--overwrite"], 2, ["is an input image", "a_mask.png"], ()),
    ("predict-onto-an-earlier-mask", _copy("imgs/b.png", "imgs/a_mask.png"),
     ["predict", "seg/best.pt", "imgs/a.png", "--out", "imgs"], 2, [NOTES, "--overwrite"], ()),
    ("predict-onto-an-earlier-mask-overwrite", _copy("imgs/b.png", "imgs/a_mask.png"),
     ["predict", "seg/best.pt", "imgs/a.png", "--out", "imgs", "--overwrite"], 0, [], ("imgs/a_mask.png",)),
    ("predict-out-is-an-input", None, ["predict", "seg/best.pt", "imgs/a.png", "--out", "imgs/a.png", "--overwrite"], 2,
     ["is an input image"], ()),
    ("predict-out-is-the-checkpoint", None, ["predict", "seg/best.pt", "imgs/a.png", "--out", "seg/best.pt"], 2,
     ["is the checkpoint being read"], ()),
    ("predict-out-a-file", None, ["predict", "seg/best.pt", "imgs/a.png", "--out", "notes.txt"], 2,
     ["not a directory"], ()),
    ("predict-under-a-file", None, ["predict", "seg/best.pt", "imgs/a.png", "--out", "notes.txt/p"], 2,
     ["not a directory"], ()),
    # ---- sweep --out
    ("sweep-into-run", None, ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", "run", "--overwrite"], 2,
     ["is a run directory"], ()),
    ("sweep-into-user-folder", None, ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", "imgs"], 2,
     ["not empty", "--overwrite"], ()),
    ("sweep-overwrite-holding-recipe", None, ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", ".",
                                              "--overwrite"], 2, ["holds the config being read"], ()),
    ("sweep-into-a-file", None, ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", "notes.txt"], 2,
     ["not a directory"], ()),
    ("sweep-into-its-recipe", None, ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", "c.yaml"], 2,
     ["is the config being read"], ()),
    # ---- compare --out
    ("compare-into-a-compared-run", None, ["compare", "run", "sw/optim.lr=0.1", "--out", "run", "--overwrite"], 2,
     ["is a run directory being compared"], ()),
    ("compare-inside-a-compared-run", None, ["compare", "run", "sw/optim.lr=0.1", "--out", "run/cmp"], 2,
     ["is inside a run directory being compared"], ()),
    ("compare-into-another-run", None, ["compare", "sw/optim.lr=0.1", "--out", "run", "--overwrite"], 2,
     ["is a run directory"], ()),
    ("compare-into-user-folder", None, ["compare", "run", "sw/optim.lr=0.1", "--out", "imgs"], 2,
     ["not empty", "--overwrite"], ()),
    ("compare-overwrite-holding-runs", None, ["compare", "run", "sw/optim.lr=0.1", "--out", ".", "--overwrite"], 2,
     ["holds a run directory being compared"], ()),
    ("compare-into-a-file", None, ["compare", "run", "--out", "notes.txt"], 2, ["not a directory"], ()),
    # ---- zoo --out
    ("zoo-into-run", None, ["zoo", "--models", "cnn", "--epochs", "1", "--set", "data.n_samples=40", "--out", "run",
                            "--overwrite"], 2, ["is a run directory"], ()),
    ("zoo-into-user-folder", None, ["zoo", "--models", "cnn", "--epochs", "1", "--set", "data.n_samples=40", "--out",
                                    "imgs"], 2, ["not empty", "--overwrite"], ()),
    ("zoo-into-a-file", None, ["zoo", "--models", "cnn", "--epochs", "1", "--set", "data.n_samples=40", "--out",
                               "notes.txt"], 2, ["not a directory"], ()),
]


@pytest.mark.parametrize("prep,args,rc,words,may_change", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_no_command_replaces_what_it_must_not(dlsem, root, prep, args, rc, words, may_change):
    if prep is not None:
        prep(root)
    args = [_plot(root) if a == "PLOT" else a for a in args]
    hostile(dlsem, root, *args, rc=rc, words=words, may_change=may_change)


# ---------------------------------------------------------------- read-only folders
@pytest.mark.skipif(ROOT, reason="chmod does not bind root")
@pytest.mark.parametrize("args,words", [
    (["report", "run", "--out", "ro/r.html"], "not writable"),
    (["train", "c.yaml", "--out", "ro/run"], "not writable"),
    (["lr-find", "c.yaml", *STEPS, "--write", "ro/x.yaml"], "not writable"),
    (["lr-find", "c.yaml", *STEPS, "--out", "ro/lf"], "not writable"),
    (["predict", "seg/best.pt", "imgs/a.png", "--out", "ro"], "not writable"),
    (["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--out", "ro/sw"], "not writable"),
    (["compare", "run", "--out", "ro/cmp"], "not writable"),
], ids=["report", "train", "lr-find-write", "lr-find-out", "predict", "sweep", "compare"])
def test_a_read_only_folder_is_one_line_before_any_work(dlsem, root, args, words):
    _readonly("ro")(root)
    try:
        hostile(dlsem, root, *args, rc=2, words=[words])
    finally:
        (root / "ro").chmod(0o755)


# ---------------------------------------------------------------- what the allowed writes leave
def test_overwrite_of_a_run_leaves_none_of_the_old_runs_files(dlsem, root):
    """A new run that never improves (it diverges at once) writes no best.pt: the old run's must not stay
    behind, nor its plots, report or metrics rows; a sweep's train.log and the folder itself stay."""
    (root / "run" / "report.html").write_text("<p>the old run</p>")
    (root / "run" / "train.log").write_text("a sweep's log\n")
    old_plots = sorted(p.name for p in (root / "run" / "plots").iterdir())
    assert old_plots and (root / "run" / "best.pt").exists()
    r = hostile(dlsem, root, "train", "c.yaml", "--set", "optim.lr=1e30", "--out", "run", "--overwrite",
                rc=0, may_change=("run/",))
    assert "diverged" in r.out
    left = sorted(str(p.relative_to(root / "run")) for p in (root / "run").rglob("*"))
    assert left == ["config.yaml", "last.pt", "metrics.csv", "plots", "summary.json", "train.log"], left
    assert (root / "run" / "train.log").read_text() == "a sweep's log\n"
    assert len((root / "run" / "metrics.csv").read_text().strip().splitlines()) == 2  # header + this run's epoch
    assert dlsem("eval", "run/best.pt", cwd=root).rc == 2  # no stale weights to evaluate


def test_report_overwrite_writes_a_page_and_rerun_rewrites_its_own(dlsem, root):
    assert dlsem("report", "run", cwd=root).rc == 0
    first = (root / "run" / "report.html").read_text()
    assert first.startswith("<!DOCTYPE html>")
    assert dlsem("report", "run", cwd=root).rc == 0  # its own default file: no --overwrite needed
    r = dlsem("report", "run", "--out", "notes.txt", "--overwrite", cwd=root)
    assert r.rc == 0 and (root / "notes.txt").read_text().startswith("<!DOCTYPE html>")


def test_predict_writes_next_to_its_images_all_or_nothing(dlsem, root):
    before = sorted(p.name for p in (root / "imgs").iterdir())
    (root / "imgs" / "b_overlay.png").write_bytes(b"an earlier overlay")  # b's second output collides
    r = dlsem("predict", "seg/best.pt", "imgs/a.png", "imgs/b.png", "--out", "imgs", cwd=root)
    assert r.rc == 2 and "b_overlay.png" in r.err, r
    assert sorted(p.name for p in (root / "imgs").iterdir()) == sorted([*before, "b_overlay.png"])  # nothing moved in
    (root / "imgs" / "b_overlay.png").unlink()
    r = dlsem("predict", "seg/best.pt", "imgs/a.png", "imgs/b.png", "--out", "imgs", "--json", cwd=root)
    assert r.rc == 0, r
    assert sorted(p.name for p in (root / "imgs").iterdir()) == sorted(
        [*before, "a_mask.png", "a_overlay.png", "b_mask.png", "b_overlay.png"])
    assert '"imgs/a_mask.png"' in r.out  # the results name the files where they are, not a staging folder
    assert Image.open(root / "imgs" / "b_mask.png").size == (31, 17)


def test_rerun_into_its_own_output_folders_needs_no_overwrite(dlsem, root):
    shutil.rmtree(root / "sw")  # a copied sweep is another sweep (its members' resolved paths differ)
    assert dlsem(*SWEEP, cwd=root).rc == 0
    again = hostile(dlsem, root, *SWEEP, rc=0, may_change=("sw/sweep.json", "sw/sweep.csv", "sw/plots/"))
    assert again.out.count("finished earlier, skipped") == 2  # sweep.json marks it: it continues
    assert dlsem("compare", "run", "sw/optim.lr=0.1", "--out", "cmp", cwd=root).rc == 0
    again = dlsem("compare", "run", "sw/optim.lr=0.1", "--out", "cmp", cwd=root)
    assert again.rc == 0, again  # compare.csv marks it as a comparison's folder
    r = dlsem("lr-find", "c.yaml", *STEPS, "--start", "1e-3", "--out", "lf", cwd=root)
    again = dlsem("lr-find", "c.yaml", *STEPS, "--start", "1e-3", "--out", "lf", cwd=root)
    assert (r.rc, again.rc) == (0, 0), again  # lr_find.json marks it as a range test's folder
    assert (root / "lf" / "lr_find.png").exists()
