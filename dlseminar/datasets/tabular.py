"""Real tabular data: the sets bundled with scikit-learn (no download) and any CSV file."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import DATASETS
from .base import Table


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


def _number(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


@DATASETS.register("csv", kind="any")
def csv_file(path=None, target=None, features=None, task="auto"):
    """Any CSV file with a header row: data.path, data.target (default: last column), data.features."""
    if not path:
        raise DataError("dataset csv needs data.path (e.g. --set data.path=my.csv)")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"CSV file {path!r} not found" if not p.exists() else f"{path!r} is not a file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            numbered = [(reader.line_num, r) for r in reader]  # line_num: the file line where the row ended
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read CSV file {path!r}: {e}") from None
    numbered = [(n, r) for n, r in numbered if any(c.strip() for c in r)]
    lines = [n for n, _ in numbered[1:]]
    rows = [r for _, r in numbered]
    if not rows:
        raise DataError(f"CSV file {path!r} is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"CSV file {path!r} has a header but no data rows")
    target = target or header[-1]
    if target not in header:
        raise DataError(f"CSV file {path!r} has no column {target!r} (columns: {', '.join(header)})")
    features = features or [h for h in header if h != target]
    for c in features:
        if c not in header:
            raise DataError(f"CSV file {path!r} has no column {c!r} (columns: {', '.join(header)})")
    if target in features:
        raise DataError(f"column {target!r} is both the target and a feature")
    cols = [header.index(c) for c in features]
    tcol = header.index(target)

    X = np.empty((len(body), len(cols)), dtype=np.float64)
    raw_y = []
    for i, row in enumerate(body):
        line = lines[i]
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")
        for j, c in enumerate(cols):
            v = _number(row[c].strip())
            if v is None:
                raise DataError(f"{path}: line {line}, column {header[c]!r}: {row[c]!r} is not a number")
            X[i, j] = v
        cell = row[tcol].strip()
        if cell == "":
            raise DataError(f"{path}: line {line}, column {target!r}: the target is empty")
        raw_y.append(cell)

    numeric = [_number(c) for c in raw_y]
    all_numeric = all(v is not None for v in numeric)
    integral = all_numeric and all(float(v).is_integer() for v in numeric)
    # auto: text labels, or integers with few distinct values, are classes; anything else is regression
    if task == "auto":
        task = "classification" if (not all_numeric or (integral and len(set(numeric)) <= 20)) else "regression"
    if task == "regression":
        if not all_numeric:
            bad = next(i for i, v in enumerate(numeric) if v is None)
            raise DataError(f"{path}: line {lines[bad]}, column {target!r}: {raw_y[bad]!r} is not a number (needed for regression)")
        return Table(X, np.asarray(numeric, dtype=np.float64), "regression", features, None, target)
    keys = sorted(set(numeric), key=float) if integral else sorted(set(raw_y))
    labels = [_fmt(k) for k in keys]
    index = {k: i for i, k in enumerate(keys)}
    y = np.asarray([index[v if integral else c] for v, c in zip(numeric, raw_y)], dtype=np.int64)
    if len(keys) < 2:
        raise DataError(f"CSV file {path!r}: the target {target!r} has a single class; classification needs two or more")
    return Table(X, y, "classification", features, labels, target)


def _fmt(k) -> str:
    return str(int(k)) if isinstance(k, float) and k.is_integer() else str(k)
