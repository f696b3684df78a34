"""Real tabular data: the sets bundled with scikit-learn (no download) and any CSV file."""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from ..registry import DATASETS
from ..data.columns import NotTrainedOn
from ..data.table import Table
from .csv_reader import number, read_csv


def _sklearn(loader: str, kind: str) -> Table:
    import sklearn.datasets as skd

    b = getattr(skd, loader)()
    names = [str(n) for n in b.target_names] if kind == "classification" else None
    return Table(b.data, b.target, kind, [str(f) for f in b.feature_names], names, "target")


@DATASETS.register("digits", kind="classification")
def digits():
    """1,797 handwritten digits as 64 pixel features (8x8, values 0-16), 10 classes (scikit-learn, bundled)."""
    return _sklearn("load_digits", "classification")


@DATASETS.register("iris", kind="classification")
def iris():
    """150 iris flowers, 4 measurements, 3 species (scikit-learn, bundled)."""
    return _sklearn("load_iris", "classification")


@DATASETS.register("wine", kind="classification")
def wine():
    """178 wines, 13 chemical measurements, 3 cultivars (scikit-learn, bundled)."""
    return _sklearn("load_wine", "classification")


@DATASETS.register("breast_cancer", kind="classification")
def breast_cancer():
    """569 tumours, 30 features, malignant vs benign (scikit-learn, bundled)."""
    return _sklearn("load_breast_cancer", "classification")


@DATASETS.register("diabetes", kind="regression")
def diabetes():
    """442 patients, 10 features, disease progression after one year: regression (scikit-learn, bundled)."""
    return _sklearn("load_diabetes", "regression")


@DATASETS.register("csv", kind="any")
def csv_file(path=None, target=None, features=None, task="auto", skip_bad=False, schema=None):
    """Any CSV file with a header row (comma, semicolon or tab): data.path, data.target (default: the last
    column), data.features (default: every other column). Text feature columns are one-hot encoded;
    data.skip_bad: true leaves out rows with an empty or non-finite cell instead of stopping."""
    t = read_csv(path, skip_bad)
    path, header, rows = t.path, t.header, t.rows
    if schema:  # evaluating a checkpoint: its target and columns, by name, whatever this file's order
        target, features, task = target or schema["target"], features or schema["columns"], schema["kind"]
    target = target or header[-1]
    features = list(features) if features else [h for h in header if h != target]
    for c in [target, *features]:
        if c not in header and schema:
            raise NotTrainedOn(f"{path}: no column {c!r}, which the checkpoint was trained on "
                               f"(it needs: {', '.join([target, *features])})")
        if c not in header:
            raise DataError(f"CSV file {path!r} has no column {c!r} (columns: {', '.join(header)})")
    if target in features:
        raise DataError(f"column {target!r} is both the target and a feature")
    for c in dict.fromkeys([target, *features]):
        where = [str(i + 1) for i, h in enumerate(header) if h == c]
        if len(where) > 1:
            raise DataError(f"CSV file {path!r} has {len(where)} columns named {c!r} (columns {', '.join(where)}); "
                            f"rename them so that each name is one column")
        if c == "":
            raise DataError(f"CSV file {path!r}: column {where[0]} has no name in the header; name it, or choose "
                            f"the columns with data.features")
    if len(set(features)) != len(features):
        raise DataError(f"data.features names a column twice: {', '.join(features)}")
    semi = t.delimiter == ";"
    cols = [header.index(c) for c in features]
    tcol = header.index(target)
    text_cols = {c for c in cols if _is_text(rows, c, semi)}
    text_target = _is_text(rows, tcol, semi) and task != "regression"
    if schema and task == "regression" and _is_text(rows, tcol, semi):
        raise NotTrainedOn(f"{path}: column {target!r} holds text labels, but the checkpoint is regression")

    keep, values, labels = [], [], []
    total = len(rows) + len(t.bad.found)  # the rows of the file, with those of the wrong width
    for i, row in enumerate(rows):
        if _row_ok(t, i, row, cols, text_cols, tcol, text_target, semi):
            keep.append(i)
            cell = row[tcol].strip()
            labels.append(cell)
            values.append(None if text_target else number(cell, semi))
    t.bad.report(total)
    if not keep:
        raise DataError(f"CSV file {path!r}: no row is left after leaving out {len(t.bad.found)} bad rows")
    X = np.full((len(keep), len(cols)), np.nan)
    text = {}
    for j, c in enumerate(cols):
        if c in text_cols:
            text[header[c]] = np.asarray([rows[i][c].strip() for i in keep], dtype=object)
        else:
            X[:, j] = [number(rows[i][c].strip(), semi) for i in keep]
    lines = np.asarray([t.lines[i] for i in keep])
    common = dict(feature_names=features, target_name=target, text=text, lines=lines, source=path, skip_bad=skip_bad)

    integral = not text_target and all(float(v).is_integer() for v in values)
    distinct = len(set(labels if text_target else values))
    if task == "auto":
        if text_target:
            task, why = "classification", f"target {target!r} has text labels: classification ({distinct} classes)"
        elif integral and distinct <= 20:
            task, why = "classification", (f"target {target!r} has {distinct} distinct integer values: classification; "
                                           f"set task: regression to predict them as numbers")
        elif integral:
            task, why = "regression", (f"target {target!r} has {distinct} distinct integer values (more than 20): "
                                       f"regression; set task: classification to treat them as classes")
        else:
            task, why = "regression", f"target {target!r} has real values: regression"
        common["note"] = why
    y_values = None if text_target else np.asarray(values, dtype=np.float64)
    if task == "regression":
        return Table(X, y_values, "regression", values=y_values, **common)
    keys = sorted(set(values), key=float) if not text_target else sorted(set(labels))
    names = [_fmt(k) for k in keys]
    index = {k: i for i, k in enumerate(keys)}
    y = np.asarray([index[v] for v in (labels if text_target else values)], dtype=np.int64)
    if len(keys) < 2:
        raise DataError(f"CSV file {path!r}: the target {target!r} has a single class; classification needs two or more")
    return Table(X, y, "classification", class_names=names, values=y_values, **common)


def _is_text(rows, c: int, semi: bool) -> bool:
    """A column is text when most of its non-empty cells are not numbers (then one stray word in a column
    of numbers is reported as a bad cell, not read as a category)."""
    cells = [r[c].strip() for r in rows]
    cells = [x for x in cells if x]
    words = sum(number(x, semi) is None for x in cells)
    return words * 2 > len(cells)


def _row_ok(t, i, row, cols, text_cols, tcol, text_target, semi) -> bool:
    """False (with data.skip_bad) or a DataError for a row with an empty, non-numeric or non-finite cell."""
    line, header = t.lines[i], t.header
    for c in [*cols, tcol]:
        cell = row[c].strip()
        what = "the target" if c == tcol else "the cell"
        if cell == "":
            t.bad(line, f", column {header[c]!r}: {what} is empty")
            return False
        v = number(cell, semi)
        if c in text_cols or (c == tcol and text_target):
            if v is not None and not math.isfinite(v):  # nan/inf among words: a missing value, not a category
                t.bad(line, f", column {header[c]!r}: {cell!r} marks a missing value")
                return False
            continue
        if v is None:
            need = " (needed for regression)" if c == tcol else ""
            t.bad(line, f", column {header[c]!r}: {cell!r} is not a number{need}")
            return False
        if not math.isfinite(v):
            t.bad(line, f", column {header[c]!r}: {what} is {cell!r}, not a finite number")
            return False
    return True


def _fmt(k) -> str:
    return str(int(k)) if isinstance(k, float) and k.is_integer() else str(k)
