"""The CSV reader (dialects, encodings, refusals) and how a CSV's columns reach the model: text features
one-hot with the training split's categories, the target's kind and why, names matched at eval."""
from __future__ import annotations

import numpy as np
import pytest

from dlseminar import catalog, config
from dlseminar.datasets import build_data
from dlseminar.datasets.csv_reader import number, read_csv
from dlseminar.errors import DataError

catalog.load_all()


def write(tmp_path, text, name="d.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def build(p, *sets, stats=None):
    return build_data(config.resolve(sets=["data.name=csv", f"data.path={p}", *sets]), stats)


def rows(n=30, sep=",", colours=("red", "green", "blue")):
    """a, b (numbers), colour (text), y = 2a - b + offset(colour): 4 columns."""
    rng = np.random.RandomState(0)
    out = [sep.join(["a", "b", "colour", "y"])]
    for i in range(n):
        a, b = rng.normal(size=2)
        c = colours[i % len(colours)]
        out.append(sep.join([f"{a:.4f}", f"{b:.4f}", c, f"{2 * a - b + colours.index(c):.4f}"]))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiter_is_detected(tmp_path, sep):
    t = read_csv(write(tmp_path, rows(sep=sep)))
    assert t.delimiter == sep and t.header == ["a", "b", "colour", "y"] and len(t.rows) == 30


def test_quoted_delimiters_do_not_split_cells(tmp_path):
    text = 'name,x,y\n"Smith, J.",1,2\n"Doe; A.",3,4\n"tab\there",5,6\n'
    t = read_csv(write(tmp_path, text))
    assert t.delimiter == "," and [r[0] for r in t.rows] == ["Smith, J.", "Doe; A.", "tab\there"]


def test_semicolon_file_reads_decimal_commas(tmp_path):
    assert number("1,5", decimal_comma=True) == 1.5 and number("1,5") is None
    assert number("1,2,3", decimal_comma=True) is None
    d = build(write(tmp_path, "x;y\n" + "".join(f"{i},5;{i * 2},25\n" for i in range(30))), "data.standardize=false")
    X, y = d.splits["train"]
    np.testing.assert_allclose(y[:, 0].numpy(), (X[:, 0] * 2 - 0.75).numpy(), rtol=1e-6)


def test_crlf_bom_utf16_and_trailing_delimiters(tmp_path):
    base = read_csv(write(tmp_path, rows(), "plain.csv"))
    crlf = read_csv(write(tmp_path, "\ufeff" + rows().replace("\n", "\r\n"), "crlf.csv"))
    utf16 = read_csv(write(tmp_path, rows(sep="\t"), "u16.csv", "utf-16"))
    trailing = read_csv(write(tmp_path, rows(sep=";").replace("\n", ";\n"), "trail.csv"))
    for t in (crlf, utf16, trailing):
        assert t.header == base.header and t.rows == base.rows and t.lines == base.lines


def test_line_numbers_count_blank_and_multi_line_cells(tmp_path):
    t = read_csv(write(tmp_path, 'x,y\n\n1,"a\nb"\n2,c\n\n\n'))
    assert t.lines == [4, 5]


@pytest.mark.parametrize("text, words", [
    ("x\n1\n2\n", "single column ('x')"),
    ("1,2,3\n4,5,6\n", "no header row"),
    ("1;2,5;3\n", "no header row"),  # decimal commas in a semicolon file are numbers too
    ("", "is empty"),
    (";;\n\n", "is empty"),
    ("a,b\n", "header but no data rows"),
])
def test_refused_files(tmp_path, text, words):
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_csv(write(tmp_path, text))


def test_ragged_rows_are_refused_or_skipped(tmp_path, capsys):
    text = "a,b,y\n1,2,3\n4,5\n6,7,8,9\n" + "".join(f"{i},{i},{i}\n" for i in range(10))
    with pytest.raises(DataError, match="line 3 has 2 cells, the header has 3"):
        read_csv(write(tmp_path, text))
    t = read_csv(write(tmp_path, text), skip_bad=True)
    t.bad.report(len(t.rows) + len(t.bad.found))
    assert len(t.rows) == 11 and [n for n, _ in t.bad.found] == [3, 4]
    assert "left out 2 of 13 rows" in capsys.readouterr().err


def test_text_features_are_one_hot_with_the_training_categories(tmp_path, capsys):
    d = build(write(tmp_path, rows(60)))
    assert d.info.in_shape == (5,)
    assert d.info.feature_names == ["a", "b", "colour=blue", "colour=green", "colour=red"]  # sorted
    assert d.stats["table"]["categories"] == {"colour": ["blue", "green", "red"]}
    assert "column 'colour' holds text: one-hot encoded as 3 inputs" in capsys.readouterr().err
    raw = build(write(tmp_path, rows(60)), "data.standardize=false")
    X = raw.splits["train"][0]
    assert set(X[:, 2:].sum(1).tolist()) == {1.0}  # exactly one category per row


def test_eval_matches_columns_and_categories_by_name(tmp_path):
    d = build(write(tmp_path, rows(60)))
    lines = rows(60).splitlines()
    swapped = [",".join([r.split(",")[2], r.split(",")[0], r.split(",")[1], r.split(",")[3]]) for r in lines]
    other = build(write(tmp_path, "\n".join(swapped) + "\n", "other.csv"), stats=d.stats)
    for s in d.splits:
        assert np.array_equal(d.splits[s][0].numpy(), other.splits[s][0].numpy())
    only_red = rows(60, colours=("red", "green", "blue")).replace("green", "red").replace("blue", "red")
    one = build(write(tmp_path, only_red, "red.csv"), stats=d.stats)
    assert one.info.in_shape == (5,)  # the checkpoint's three categories, not the one this file has
    with pytest.raises(DataError, match="line 3, column 'colour': category 'teal' is not in the checkpoint's"):
        build(write(tmp_path, rows(60).replace("green", "teal"), "teal.csv"), stats=d.stats)
    with pytest.raises(DataError, match="no column 'b', which the checkpoint was trained on"):
        build(write(tmp_path, rows(60).replace(",b,", ",c,"), "renamed.csv"), stats=d.stats)


def test_eval_maps_classes_by_name(tmp_path):
    text = "x,label\n" + "".join(f"{i},{'abc'[i % 3]}\n" for i in range(30))
    d = build(write(tmp_path, text))
    assert d.info.class_names == ["a", "b", "c"]
    only_bc = "x,label\n" + "".join(f"{i},{'bc'[i % 2]}\n" for i in range(30))
    o = build(write(tmp_path, only_bc, "bc.csv"), stats=d.stats)
    assert o.info.class_names == ["a", "b", "c"] and o.info.num_classes == 3
    X, y = o.splits["test"]
    assert set(y.tolist()) <= {1, 2}
    with pytest.raises(DataError, match="class 'd' is not one the model was trained on"):
        build(write(tmp_path, text.replace(",c\n", ",d\n"), "d.csv2"), stats=d.stats)


def test_a_category_only_outside_the_training_split(tmp_path, capsys):
    lines = rows(40).splitlines()
    p = write(tmp_path, "\n".join(lines) + "\n")
    d = build(p, "data.standardize=false")
    a = float(d.splits["test"][0][0, 0])  # one test row, found in the file by its value of a
    row = next(i for i, ln in enumerate(lines) if i and abs(float(ln.split(",")[0]) - a) < 1e-3)
    cells = lines[row].split(",")
    lines[row] = ",".join(cells[:2] + ["teal"] + cells[3:])
    q = write(tmp_path, "\n".join(lines) + "\n", "rare.csv")
    with pytest.raises(DataError, match=f"line {row + 1}, column 'colour': category 'teal' is not in the training"):
        build(q)
    skipped = build(q, "data.skip_bad=true")
    assert len(skipped.splits["test"][0]) == len(d.splits["test"][0]) - 1
    assert len(skipped.splits["train"][0]) == len(d.splits["train"][0])
    assert "left out 1 rows whose category the training split lacks" in capsys.readouterr().err


@pytest.mark.parametrize("target, task, kind, words", [
    ("{i}.5", "auto", "regression", "target 'y' has real values: regression"),
    ("{k}", "auto", "classification", "target 'y' has 3 distinct integer values: classification; set task: regression"),
    ("{i}", "auto", "regression", "target 'y' has 30 distinct integer values (more than 20): regression; set task: classification"),
    ("c{k}", "auto", "classification", "target 'y' has text labels: classification (3 classes)"),
    ("{k}", "regression", "regression", None),
])
def test_task_auto_says_what_it_chose_and_why(tmp_path, capsys, target, task, kind, words):
    text = "x,y\n" + "".join(f"{i},{target.format(i=i, k=i % 3)}\n" for i in range(30))
    d = build(write(tmp_path, text), f"task={task}")
    err = capsys.readouterr().err
    assert d.info.kind == kind
    if words:
        assert f"note: {words}" in err
    else:
        assert "note: target" not in err


def test_a_word_among_numbers_is_a_bad_cell_not_a_category(tmp_path):
    text = "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)) + "oops,1\n"
    with pytest.raises(DataError, match="line 22, column 'a': 'oops' is not a number"):
        build(write(tmp_path, text))
