"""Hostile CSV files through the real CLI: the dialects people have must train with the right inputs
and classes; everything else is one error line naming the file, line and column, inputs unchanged."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _harness import hostile

QUIET = ("--set", "logging.plots=false")


def table(n=30, sep=",", text=False, target="real", header=("a", "b", "y"), nl="\n", bad=None):
    """A small CSV: numbers a, b (b: text categories when `text`), a target; bad={row: (col, cell)}."""
    rng = np.random.RandomState(1)
    out = [sep.join(header)]
    for i in range(n):
        a, b = rng.normal(size=2)
        y = {"real": f"{2 * a - b:.4f}", "int3": str(i % 3), "text": "xyz"[i % 3], "int": str(i)}[target]
        cells = [f"{a:.4f}", "red green blue".split()[i % 3] if text else f"{b:.4f}", y]
        for col, cell in (bad or {}).get(i, {}).items():
            cells[col] = cell
        out.append(sep.join(cells))
    return nl.join(out) + nl


def train(*sets, model="perceptron"):
    return ("train", "--data", "csv", "--model", model, "--epochs", "1", "--out", "run", *QUIET,
            *[a for s in sets for a in ("--set", s)])


def ckpt(root):
    return torch.load(root / "run/best.pt", weights_only=True)


def summary(root):
    return json.loads((root / "run/summary.json").read_text())


def inputs(n):
    """The run's model has n inputs: the perceptron's printed weights and the checkpoint agree."""
    def check(root, r):
        w = summary(root)["weights"]
        assert len((w if isinstance(w, dict) else w[0])["w"]) == n
        assert tuple(ckpt(root)["data_info"]["in_shape"]) == (n,)
    return check


def classes(names):
    def check(root, r):
        info = ckpt(root)["data_info"]
        assert summary(root)["task"] == "classification" and info["class_names"] == names
    return check


def regression(root, r):
    assert summary(root)["task"] == "regression"


def all_of(*checks):
    def check(root, r):
        for c in checks:
            c(root, r)
    return check


def err_has(*words):
    def check(root, r):
        for w in words:
            assert w in r.err, (w, r.err)
    return check


def latin1(root):
    umlauts = "\u00e4\u00f6"
    return ("gr\u00f6\u00dfe,y\n" + "".join(f"{i},{umlauts[i % 2]}\n" for i in range(30))).encode("latin-1")


# (id, files {name: str | bytes}, extra --set items, rc, words (rc 2) or a check (rc 0))
TRAINS = [
    ("comma", {"d.csv": table()}, (), all_of(inputs(2), regression)),
    ("semicolon", {"d.csv": table(sep=";")}, (), all_of(inputs(2), regression)),
    ("tab", {"d.csv": table(sep="\t")}, (), all_of(inputs(2), regression)),
    ("semicolon-decimal-comma", {"d.csv": table(sep=";").replace(".", ",")}, (), all_of(inputs(2), regression)),
    ("bom", {"d.csv": "\ufeff" + table()}, (), all_of(inputs(2), regression)),
    ("crlf", {"d.csv": table(nl="\r\n")}, (), all_of(inputs(2), regression)),
    ("utf16-tab", {"d.csv": table(sep="\t").encode("utf-16")}, (), inputs(2)),
    ("latin1-read-with-a-note", {"d.csv": latin1}, (), all_of(classes(["\u00e4", "\u00f6"]), err_has("is not UTF-8"))),
    ("quoted-delimiters", {"d.csv": 'name,a,y\n' + "".join(f'"Doe, {"AB"[i % 2]}; x",{i},{i % 2}\n' for i in range(30))},
     (), all_of(inputs(3), classes(["0", "1"]))),
    ("trailing-empty-lines", {"d.csv": table() + "\n\n  \n,,\n"}, (), inputs(2)),
    ("trailing-delimiter", {"d.csv": table(sep=";").replace("\n", ";\n")}, (), inputs(2)),
    ("text-feature-one-hot", {"d.csv": table(text=True)}, (),
     all_of(inputs(4), err_has("column 'b' holds text: one-hot encoded as 3 inputs (blue, green, red)"),
            lambda root, r: ckpt(root)["data_stats"]["table"]["categories"] == {"b": ["blue", "green", "red"]} or
            pytest.fail("categories"))),
    ("text-target", {"d.csv": table(target="text")}, (),
     all_of(classes(["x", "y", "z"]), err_has("target 'y' has text labels: classification (3 classes)"))),
    ("few-integers-are-classes", {"d.csv": table(target="int3")}, (),
     all_of(classes(["0", "1", "2"]), err_has("3 distinct integer values: classification; set task: regression"))),
    ("many-integers-are-values", {"d.csv": table(target="int")}, (),
     all_of(regression, err_has("30 distinct integer values (more than 20): regression"))),
    ("real-target-note", {"d.csv": table()}, (), err_has("note: target 'y' has real values: regression")),
    ("skip-bad-nan-target", {"d.csv": table(bad={4: {2: "nan"}})}, ("data.skip_bad=true",),
     all_of(inputs(2), err_has("left out 1 of 30 rows", "line 6, column 'y'"))),
    ("skip-bad-empty-feature", {"d.csv": table(bad={2: {0: ""}, 9: {1: " "}})}, ("data.skip_bad=true",),
     err_has("left out 2 of 30 rows", "line 4, column 'a': the cell is empty")),
    ("skip-bad-ragged-row", {"d.csv": table().replace("\n", "\n1,2\n", 1)}, ("data.skip_bad=true",),
     err_has("left out 1 of 31 rows", "line 2 has 2 cells")),
    ("task-regression-on-integers", {"d.csv": table(target="int3")}, ("task=regression",), regression),
]


@pytest.mark.parametrize("files, sets, check", [c[1:] for c in TRAINS], ids=[c[0] for c in TRAINS])
def test_csv_files_people_have_train(dlsem, tmp_path, files, sets, check):
    for name, content in files.items():
        content = content(tmp_path) if callable(content) else content
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    r = hostile(dlsem, tmp_path, *train("data.path=d.csv", *sets), rc=0)
    check(tmp_path, r)


def big_field(root):
    return "a,y\n" + "x" * 200_000 + ",1\n"


def wide(root):
    return ",".join(f"c{i}" for i in range(100_000)) + "\n"


def directory(root):
    (root / "d.csv").mkdir()
    return None


REFUSED = [
    ("one-column", "y\n1\n2\n3\n", (), ["single column ('y')", "commas, semicolons or tabs"]),
    ("one-column-other-delimiter", "a|b|y\n1|2|3\n", (), ["single column ('a|b|y')"]),
    ("headerless", "1.5,2,3\n4,5,6\n" * 10, (), ["no header row", "add a first line with the column names"]),
    ("duplicate-target", "a,y,b,y\n" + "1,2,3,4\n" * 10, (), ["2 columns named 'y'", "columns 2, 4"]),
    ("duplicate-feature", "a,a,y\n" + "1,2,3\n" * 10, (), ["2 columns named 'a'"]),
    ("unnamed-column", ",a,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(10)), (), ["column 1 has no name"]),
    ("nan-target", table(bad={3: {2: "nan"}}), (), ["line 5, column 'y'", "'nan'", "skip_bad"]),
    ("inf-target", table(bad={7: {2: "inf"}}), (), ["line 9, column 'y'", "'inf', not a finite number"]),
    ("empty-target", table(bad={3: {2: ""}}), (), ["line 5, column 'y': the target is empty"]),
    ("minus-inf-feature", table(bad={0: {1: "-inf"}}), (), ["line 2, column 'b'", "'-inf'"]),
    ("empty-numeric-feature", table(bad={5: {0: " "}}), (), ["line 7, column 'a': the cell is empty"]),
    ("empty-text-feature", table(text=True, bad={5: {1: ""}}), (), ["line 7, column 'b': the cell is empty"]),
    ("nan-among-text-labels", table(target="text", bad={4: {2: "NaN"}}), (), ["line 6, column 'y': 'NaN' marks a missing value"]),
    ("inf-among-text-feature", table(text=True, bad={8: {1: "inf"}}), (), ["line 10, column 'b': 'inf' marks a missing"]),
    ("word-among-numbers", table(bad={10: {0: "oops"}}), (), ["line 12, column 'a': 'oops' is not a number"]),
    ("too-many-cells", table().replace("\n", "\n1,2,3,4\n", 2).replace("\n1,2,3,4\n", "\n", 1), (),
     ["has 4 cells, the header has 3"]),
    ("text-target-as-regression", table(target="text"), ("task=regression",),
     ["line 2, column 'y': 'x' is not a number"]),
    ("names-or-ids", "name,a,y\n" + "".join(f"p{i},{i},{i % 2}\n" for i in range(40)), (),
     ["column 'name' holds text with", "data.features"]),
    ("every-row-bad", "a,y\n" + "nan,1\n" * 10, ("data.skip_bad=true",), ["no row is left"]),
    ("binary-renamed", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), (), ["not text", "NUL"]),
    ("huge-single-field", big_field, (), ["line 2 has a cell longer than 131072 characters"]),
    ("huge-single-line", wide, (), ["has a header but no data rows"]),
    ("directory", directory, (), ["is not a file but a directory"]),
    ("empty", "", (), ["is empty"]),
    ("missing-target", table(), ("data.target=price",), ["no column 'price'", "a, b, y"]),
]


@pytest.mark.parametrize("content, sets, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_csv_files_are_refused_in_one_line(dlsem, tmp_path, content, sets, words):
    content = content(tmp_path) if callable(content) else content
    if content is not None:
        (tmp_path / "d.csv").write_bytes(content.encode() if isinstance(content, str) else content)
    hostile(dlsem, tmp_path, *train("data.path=d.csv", *sets), rc=2, words=words)
    assert not (tmp_path / "run").exists()  # a refused run leaves no run directory


def _swap(text, f):
    return "\n".join(f(line.split(",")) for line in text.splitlines()) + "\n"


EVALS = [
    ("columns-reordered", table(text=True), lambda t: _swap(t, lambda c: ",".join([c[2], c[1], c[0]])), 0, ()),
    ("unseen-category", table(text=True), lambda t: t.replace("green", "teal"), 2,
     ["column 'b': category 'teal'", "line", "other.csv", "(blue, green, red)"]),
    ("unseen-class", table(target="text"), lambda t: t.replace(",z\n", ",w\n"), 2,
     ["column 'y': class 'w' is not one the model was trained on (x, y, z)"]),
    ("column-missing", table(), lambda t: t.replace("a,b,y", "a,c,y"), 2,
     ["no column 'b', which the checkpoint was trained on"]),
    ("numbers-where-text-was", table(text=True), lambda t: table(), 2,
     ["column 'b' holds numbers, but the checkpoint was trained on text"]),
    ("text-target-for-a-regression-model", table(), lambda t: table(target="text"), 2,
     ["column 'y' holds text labels, but the checkpoint is regression"]),
]


@pytest.mark.parametrize("first, second, rc, words", [c[1:] for c in EVALS], ids=[c[0] for c in EVALS])
def test_eval_on_another_csv(dlsem, tmp_path, first, second, rc, words):
    (tmp_path / "d.csv").write_text(first)
    (tmp_path / "other.csv").write_text(second(first))
    r = dlsem(*train("data.path=d.csv"))
    assert r.rc == 0, r
    e = hostile(dlsem, tmp_path, "eval", "run/best.pt", "--data", "csv", "--set", "data.path=other.csv", "--json",
                rc=rc, words=words)
    if rc == 0:  # the same rows by name: the same numbers as on the training file
        assert json.loads(e.out) == summary(tmp_path)["test"]
