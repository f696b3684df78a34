"""A Table's columns as the model sees them: the target's kind and classes, text features one-hot.

Table.split (table.py) calls these. What they fit (the categories of text columns, the classes,
the columns in their order) comes from the training split, is stored in the checkpoint's data
stats as `stats["table"]`, and replaces every fit when a checkpoint is evaluated or resumed: a
model trained on one CSV file is evaluated on another by column and class names, never by
position.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..console import note
from ..errors import ConfigError, DataError

MAX_SHOWN = 8  # categories or classes named in one message


class NotTrainedOn(DataError):
    """The data holds a column, class or category the checkpoint's model was not trained on."""


def _where(table, row: int) -> str:
    if table.source is not None and table.lines is not None:
        return f"{table.source}: line {int(table.lines[row])}, "
    return f"dataset row {row + 1}, "


def _listed(names) -> str:
    names = list(names)
    return ", ".join(names[:MAX_SHOWN]) + (", ..." if len(names) > MAX_SHOWN else "")


def select_columns(table, columns: list[str], name: str):
    """The table with the checkpoint's feature columns, in the checkpoint's order (a CSV file may order them
    differently or hold more)."""
    if list(table.feature_names) == list(columns):
        return table
    missing = [c for c in columns if c not in table.feature_names]
    if missing:
        raise NotTrainedOn(f"{table.source or name}: no column {missing[0]!r}, which the checkpoint was trained on "
                        f"(it needs: {_listed(columns)})")
    idx = [table.feature_names.index(c) for c in columns]
    return replace(table, X=np.asarray(table.X)[:, idx], feature_names=list(columns),
                   text={c: v for c, v in table.text.items() if c in columns})


def _labels(table) -> list[str]:
    """Each row's target as a class name (text labels, or integer values written as integers)."""
    if table.kind == "classification":
        names = table.class_names or [str(i) for i in range(int(np.max(table.y)) + 1)]
        return [names[i] for i in np.asarray(table.y, dtype=np.int64)]
    y = np.asarray(table.y, dtype=np.float64)
    bad = np.flatnonzero(np.mod(y, 1) != 0)
    if len(bad):
        raise NotTrainedOn(f"{_where(table, int(bad[0]))}column {table.target_name!r}: {y[bad[0]]:g} is not a class "
                        f"label; the checkpoint is a classifier")
    return [str(int(v)) for v in y]


def target(table, name: str, task: str, schema: dict | None):
    """(y, kind, class_names): the kind a checkpoint was trained for, else `task`, else the table's own."""
    y, kind = np.asarray(table.y), table.kind
    want = schema["kind"] if schema else task if task in ("classification", "regression") else kind
    if want == "regression":
        if kind == "classification":
            if table.values is not None:  # a CSV target of numbers read as classes: its values
                y = table.values
            elif table.source is not None:
                error = NotTrainedOn if schema else DataError
                raise error(f"{table.source}: column {table.target_name!r} holds text labels, but the "
                            f"{'checkpoint' if schema else 'task'} is regression")
            # else a bundled dataset's class indices become numeric targets
        return y.astype(np.float64), "regression", []
    if not schema:
        if kind == "regression" and not np.all(np.equal(np.mod(y, 1), 0)):
            raise ConfigError(f"task classification needs class labels, but dataset {name!r} has real-valued targets")
        y = y.astype(np.int64)
        return y, "classification", list(table.class_names or [str(c) for c in range(int(y.max()) + 1)])
    classes = list(schema["classes"])
    index = {c: i for i, c in enumerate(classes)}
    labels = _labels(table)
    for i, c in enumerate(labels):
        if c not in index:
            raise NotTrainedOn(f"{_where(table, i)}column {table.target_name!r}: class {c!r} is not one the model "
                            f"was trained on ({_listed(classes)})")
    return np.asarray([index[c] for c in labels], dtype=np.int64), "classification", classes


def features(table, train: np.ndarray, schema: dict | None):
    """(X (N, F') float64, names, categories, keep): text columns one-hot, with the categories of the training
    split (sorted) or of the checkpoint. keep: rows to use; a row whose category the training split lacks is
    an error naming it, or with data.skip_bad left out (None: every row)."""
    X = np.asarray(table.X, dtype=np.float64)
    if not table.text and not (schema and schema.get("categories")):
        return X, list(table.feature_names), {}, None
    fitted = dict(schema.get("categories", {})) if schema else {}
    blocks, names, categories = [], [], {}
    keep = np.ones(len(X), dtype=bool)
    for j, col in enumerate(table.feature_names):
        if col not in table.text:
            if col in fitted:
                raise NotTrainedOn(f"{table.source}: column {col!r} holds numbers, but the checkpoint was trained on "
                                   f"text in it ({_listed(fitted[col])})")
            blocks.append(X[:, j:j + 1])
            names.append(col)
            continue
        cells = table.text[col]
        if col in fitted:
            cats = list(fitted[col])
        elif schema:
            raise NotTrainedOn(f"{table.source}: column {col!r} holds text, but the checkpoint was trained on "
                            f"numbers in it")
        else:
            cats = sorted(set(cells[train].tolist()))
            if len(cats) > 10 and len(cats) * 2 > len(train):
                raise DataError(f"{table.source}: column {col!r} holds text with {len(cats)} different values in "
                                f"{len(train)} training rows (names or ids?); leave it out with data.features")
            note(f"column {col!r} holds text: one-hot encoded as {len(cats)} inputs ({_listed(cats)})")
        categories[col] = cats
        known = np.isin(cells, np.asarray(cats, dtype=object))
        for i in np.flatnonzero(~known & keep):
            if not table.skip_bad:
                seen = "the checkpoint's training split" if schema else "the training split"
                raise NotTrainedOn(f"{_where(table, int(i))}column {col!r}: category {cells[i]!r} is not in {seen} "
                                f"({_listed(cats)}); data.skip_bad: true leaves such rows out")
        keep &= known
        blocks.append((cells[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))  # (N, k)
        names += [f"{col}={c}" for c in cats]
    if not keep.all():
        note(f"data.skip_bad: left out {int((~keep).sum())} rows whose category the training split lacks "
             f"(the first: line {int(table.lines[np.flatnonzero(~keep)[0]])})")
    return np.concatenate(blocks, 1), names, categories, None if keep.all() else keep
