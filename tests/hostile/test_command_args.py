"""Hostile arguments: every subcommand given what a hurried user types (a missing value, a typo'd name,
a shape that cannot be, a grid of ten thousand members, a range test from 0 or to infinity, a resume
that changes the model) and the commands that must still work on odd but valid input.

A refusal is one `error:` line holding the expected words, exit 2, no traceback, no input changed and
no temporary file left (tests/hostile/_harness.py). A case that must succeed asserts its result: exit 0
and the words or files it produces.

Config files and --set keys, CSVs, output paths, checkpoints, images and signals have their own
files in this folder; the environment a command meets is tests/hostile/test_environment.py.

Two tiny runs are trained once per module (a 2-epoch xor MLP, a 1-epoch 16x16 shapes CNN) and
copied with a recipe, a note, an empty folder and one PNG into each case's folder.
"""
from __future__ import annotations


import numpy as np
import pytest
from _harness import copy_case, hostile, tiny_run
from PIL import Image

RECIPE = "data:\n  name: xor\n  n_samples: 100\ntrain:\n  epochs: 1\nlogging:\n  plots: false\n"
TEN = ",".join(str(i) for i in range(1, 11))  # ten values: four such --grid keys make 10,000 members
LR = ("lr-find", "c.yaml")


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("args-src")
    tiny_run(d / "run", "xor")
    tiny_run(d / "img", "img")
    (d / "c.yaml").write_text(RECIPE)
    (d / "notes.txt").write_text("the user's own notes\n")
    (d / "empty").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(d / "pic.png")
    return d


@pytest.fixture
def root(src, tmp_path):
    return copy_case(src, tmp_path)


# (id, command line, exit code, words of the error line; on success: words of stdout, files written)
CASES = [
    # ---- the top level
    ("no-arguments-is-help", [], 0, ["Usage: dlsem", "train"], ()),
    ("unknown-command", ["nosuch"], 2, ["no such command", "nosuch"], ()),
    ("unknown-option", ["--nosuch"], 2, ["no such option: --nosuch", "dlsem --help"], ()),
    ("unknown-config-command", ["config", "nosuch"], 2, ["no such command", "nosuch"], ()),
    ("datasets-extra-argument", ["datasets", "extra-arg"], 2, ["unexpected extra argument", "extra-arg"], ()),
    # ---- models
    ("models-input-zero", ["models", "--input", "0x0x0"], 2, ["--input must look like 3x32x32 or 64", "0x0x0"], ()),
    ("models-input-words", ["models", "--input", "abc"], 2, ["--input must look like", "'abc'"], ()),
    ("models-input-two-dims", ["models", "--input", "3x32"], 2, ["--input must look like", "'3x32'"], ()),
    ("models-input-four-dims", ["models", "show", "mlp", "--input", "3x32x32x3"], 2, ["--input must look like"], ()),
    ("models-classes-zero", ["models", "--classes", "0"], 2, ["--classes", "greater than or equal to 1"], ()),
    ("models-show-unknown", ["models", "show", "nosuch"], 2, ["unknown model 'nosuch'", "choose from", "resnet18"], ()),
    ("models-show-no-name", ["models", "show"], 2, ["missing argument 'NAME'"], ()),
    ("models-show-conv-on-features", ["models", "show", "cnn", "--input", "8"], 2, ["needs image inputs"], ()),
    # an image to an MLP: it flattens it (3*32*32*128 + 128 weights in its first layer)
    ("models-show-mlp-on-an-image", ["models", "show", "mlp", "--input", "3x32x32"], 0,
     ["393,344", "total parameters: 394,634"], ()),
    # 4x4 through resnet18's small stem: three stride-2 stages end at 1x1, the global pool keeps it
    ("models-show-resnet18-tiny-input", ["models", "show", "resnet18", "--input", "3x4x4"], 0,
     ["512x1x1", "total parameters: 11,173,962"], ()),
    # shapes only (meta device): 1e10 weights and a 3e15-value input cost no memory
    ("models-show-huge-input", ["models", "show", "cnn", "--input", "99999x99999x99999"], 0,
     ["total parameters: 99,999,201,274"], ()),
    ("models-show-detector-huge-input", ["models", "show", "rcnn_cnn", "--input", "3x999999x999999"], 2,
     ["an input of 3x999999x999999 needs about", "use a smaller --input"], ()),
    # ---- config
    ("config-show-missing", ["config", "show", "missing.yaml"], 2, ["config file 'missing.yaml' not found"], ()),
    ("config-show-a-folder", ["config", "show", "run"], 2, ["'run' is a directory"], ()),
    # ---- eval
    ("eval-unknown-split", ["eval", "run/best.pt", "--split", "nosuch"], 2,
     ["--split must be train, val or test", "'nosuch'"], ()),
    ("eval-split-in-capitals", ["eval", "run/best.pt", "--split", "VAL"], 2, ["--split must be", "'VAL'"], ()),
    ("eval-val-without-val-split", ["eval", "run/best.pt", "--split", "val", "--set", "data.val_split=0"], 2,
     ["data.val_split must be in (0, 1)"], ()),
    ("eval-val-split", ["eval", "run/best.pt", "--split", "val"], 0, ["run/best.pt on xor (val):", "val/acc"], ()),
    ("eval-a-run-folder", ["eval", "run"], 2, ["'run' is a directory, not a checkpoint file", "best.pt"], ()),
    ("eval-missing-checkpoint", ["eval", "missing.pt"], 2, ["checkpoint 'missing.pt' not found"], ()),
    ("eval-extra-argument", ["eval", "run/best.pt", "extra"], 2, ["unexpected extra argument", "extra"], ()),
    # ---- predict
    ("predict-without-images", ["predict", "img/best.pt"], 2, ["missing argument 'IMAGES'"], ()),
    ("predict-a-text-file", ["predict", "img/best.pt", "notes.txt"], 2, ["cannot read image 'notes.txt'"], ()),
    ("predict-an-empty-folder", ["predict", "img/best.pt", "empty"], 2, ["no image files found in empty"], ()),
    ("predict-a-missing-image", ["predict", "img/best.pt", "nosuch.png"], 2, ["'nosuch.png' not found"], ()),
    ("predict-with-a-tabular-model", ["predict", "run/best.pt", "pic.png"], 2,
     ["classification model on (2,) inputs", "takes image classifiers"], ()),
    ("predict-top-k-zero", ["predict", "img/best.pt", "pic.png", "--top-k", "0"], 2,
     ["--top-k", "greater than or equal to 1"], ()),
    ("predict-score-threshold-two", ["predict", "img/best.pt", "pic.png", "--score-threshold", "2"], 2,
     ["--score-threshold", "less than or equal to 1"], ()),
    # more classes asked for than the model has: all four, best first
    ("predict-top-k-above-classes", ["predict", "img/best.pt", "pic.png", "--top-k", "99"], 0,
     ["pic.png", "#4", "circle", "triangle"], ()),
    # ---- sweep
    ("sweep-grid-without-values", ["sweep", "c.yaml", "--grid", "optim.lr"], 2,
     ["--grid expects key=value1,value2,...", "'optim.lr'"], ()),
    ("sweep-grid-empty-value", ["sweep", "c.yaml", "--grid", "optim.lr="], 2, ["'optim.lr=' has an empty value"], ()),
    ("sweep-grid-without-key", ["sweep", "c.yaml", "--grid", "=1,2"], 2, ["--grid expects key=", "'=1,2'"], ()),
    ("sweep-grid-unknown-key", ["sweep", "c.yaml", "--grid", "nosuch.key=1,2"], 2,
     ["unknown config key 'nosuch.key' in --grid"], ()),
    ("sweep-grid-words-for-numbers", ["sweep", "c.yaml", "--grid", "optim.lr=a,b"], 2,
     ["optim.lr must be a number", "'a'"], ()),
    ("sweep-grid-key-twice", ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--grid", "optim.lr=0.3"], 2,
     ["--grid optim.lr is given twice"], ()),
    ("sweep-grid-repeated-value", ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.1"], 2, ["repeats a value"], ()),
    ("sweep-grid-unbalanced-list", ["sweep", "c.yaml", "--grid", "model.hidden=[8,16"], 2, ["unbalanced brackets"], ()),
    ("sweep-grid-of-ten-thousand", ["sweep", "c.yaml", "--grid", f"optim.lr={TEN}", "--grid", f"train.epochs={TEN}",
                                    "--grid", f"seed={TEN}", "--grid", f"train.batch_size={TEN}"], 2,
     ["--grid makes 10,000 members (10 x 10 x 10 x 10)", "at most 1,000"], ()),
    ("sweep-without-grid", ["sweep", "c.yaml"], 2, ["a sweep needs at least one --grid"], ()),
    ("sweep-jobs-zero", ["sweep", "c.yaml", "--grid", "optim.lr=0.1,0.2", "--jobs", "0"], 2,
     ["--jobs", "greater than or equal to 1"], ()),
    # ---- zoo
    ("zoo-unknown-model", ["zoo", "--models", "nosuch", "--epochs", "1"], 2,
     ["'nosuch' is not an image classifier of the zoo", "choose from"], ()),
    ("zoo-not-an-image-model", ["zoo", "--models", "mlp", "--epochs", "1"], 2,
     ["'mlp' is not an image classifier of the zoo"], ()),
    ("zoo-model-twice", ["zoo", "--models", "cnn,cnn", "--epochs", "1"], 2, ["names a model twice"], ()),
    ("zoo-features-not-images", ["zoo", "--data", "digits", "--models", "cnn", "--epochs", "1"], 2,
     ["dlsem zoo compares image classifiers", "64 features", "digits_images"], ()),
    ("zoo-unknown-data", ["zoo", "--data", "nosuch", "--models", "cnn"], 2, ["unknown dataset 'nosuch'"], ()),
    ("zoo-epochs-zero", ["zoo", "--epochs", "0"], 2, ["--epochs", "greater than or equal to 1"], ()),
    # ---- compare
    ("compare-one-run", ["compare", "run"], 0, ["runs/compare/compare.csv"],
     ("runs/compare/compare.csv", "runs/compare/plots/compare.png")),
    ("compare-nothing", ["compare"], 2, ["missing argument 'RUNS'"], ()),
    ("compare-an-empty-folder", ["compare", "empty"], 2, ["'empty' holds no run"], ()),
    ("compare-a-file", ["compare", "run", "notes.txt"], 2, ["'notes.txt' is not a run or sweep directory"], ()),
    ("compare-a-missing-folder", ["compare", "nosuch"], 2, ["'nosuch' does not exist"], ()),
    ("compare-a-run-twice", ["compare", "run", "run"], 2, ["the same run directory is given twice"], ()),
    # ---- lr-find
    ("lr-find-three-steps", [*LR, "--steps", "3"], 2, ["--steps must be at least 10 (got 3)"], ()),
    ("lr-find-start-zero", [*LR, "--start", "0"], 2, ["--start must be > 0 and below --end"], ()),
    ("lr-find-start-above-end", [*LR, "--start", "10", "--end", "1"], 2,
     ["--start must be > 0 and below --end (got 10 and 1)"], ()),
    ("lr-find-end-nan", [*LR, "--end", "nan"], 2, ["--start and --end must be finite numbers", "nan"], ()),
    ("lr-find-end-inf", [*LR, "--end", "inf"], 2, ["--start and --end must be finite numbers", "inf"], ()),
    ("lr-find-start-subnormal", [*LR, "--start", "1e-320"], 2, ["is too small for --end 10", "overflows"], ()),
    # ---- train
    ("train-devices-zero", ["train", "c.yaml", "--devices", "0"], 2, ["--devices", "greater than or equal to 1"], ()),
    ("train-resume-missing", ["train", "--resume", "missing.pt"], 2, ["checkpoint 'missing.pt' not found"], ()),
    ("train-devices-resume-missing", ["train", "--devices", "2", "--resume", "missing.pt"], 2,
     ["checkpoint 'missing.pt' not found"], ()),
    ("train-resume-other-model", ["train", "--resume", "run/last.pt", "--set", "model.name=cnn"], 2,
     ["--resume cannot change model.name", "'mlp' in the checkpoint, 'cnn' now"], ()),
    ("train-resume-other-model-option", ["train", "--resume", "run/last.pt", "--model", "cnn"], 2,
     ["--resume cannot change model.name"], ()),
    ("train-resume-with-a-recipe", ["train", "c.yaml", "--resume", "run/last.pt"], 2,
     ["do not pass a CONFIG file too"], ()),
    ("train-resume-best", ["train", "--resume", "run/best.pt"], 2, ["holds weights only", "last.pt"], ()),
]


@pytest.mark.parametrize("args,rc,words,files", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_argument_is_one_line(dlsem, root, args, rc, words, files):
    r = hostile(dlsem, root, *args, rc=rc, words=words if rc == 2 else ())
    if rc == 0:
        for w in words:
            assert w in r.out, f"{w!r} not in stdout\n{r}"
        for f in files:
            assert (root / f).is_file(), f"{f} not written\n{r}"


def test_score_threshold_on_a_classifier_is_said_not_silently_ignored(dlsem, root):
    """--score-threshold is a detector's: a classifier predicts as usual, with a note that it was ignored."""
    r = hostile(dlsem, root, "predict", "img/best.pt", "pic.png", "--score-threshold", "0.5", rc=0)
    assert "pic.png" in r.out and "#1" in r.out, r
    assert "note:" in r.err and "score_thresh is ignored by 'cnn'" in r.err, r
