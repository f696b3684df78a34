"""A table (features X, one target y), the samples classification and regression share, and its split."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..console import note
from ..errors import DataError
from .core import Data, DataInfo, Samples, SplitSpec, check_split, split_indices


@dataclass
class Table(Samples):
    """A whole tabular dataset before splitting: X (N, F) and y (N,) class indices or values."""

    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    X: np.ndarray
    y: np.ndarray
    kind: str  # "classification" | "regression": what the reader found; the config's task may say otherwise
    feature_names: list[str]
    class_names: list[str] | None = None
    target_name: str = "y"
    strata: np.ndarray | None = None  # groups to keep in proportion across splits (default: the classes)
    # -- read from a file (csv): what the split needs to encode text and to name lines in messages
    text: dict[str, np.ndarray] = field(default_factory=dict)  # feature name -> (N,) strings; X holds nan there
    values: np.ndarray | None = None  # the target as numbers when its cells are numbers (None: text labels)
    lines: np.ndarray | None = None  # (N,) the file line of each row
    source: str | None = None  # the file, for messages; also: columns and classes are matched by name
    skip_bad: bool = False  # rows with a category the training split lacks are left out instead of refused
    note: str | None = None  # why task: auto chose this kind (printed unless a checkpoint decides)
    truth: dict | None = None  # generated data: the line/plane {"w0", "w"} that made it (DataInfo.true_weights)

    def split(self, spec: SplitSpec) -> Data:
        """Split by seed (stratified for classes) and fit on the training split only: the features'
        mean/std and, for regression, the target's (data.standardize), the categories of text columns,
        the classes. A checkpoint's stats replace every fit, so eval and resume see what training saw;
        a checkpoint without target stats (older ones) leaves the targets as they are (mean 0, std 1)."""
        from .columns import features, select_columns, target

        table, name = self, spec.name
        given = spec.stats is not None
        stats = dict(spec.stats or {})
        schema = stats.get("table") if given and table.source is not None else None  # names: files only
        if schema:
            table = select_columns(table, schema["columns"], name)
        y, kind, class_names = target(table, name, spec.task, schema)
        if table.note and not schema:
            note(table.note)
        check_split(name, len(y), spec.val, spec.test, "samples")
        strata = table.strata if table.strata is not None else (y if kind == "classification" else None)
        parts = split_indices(len(y), spec.val, spec.test, spec.seed, strata)
        if len(parts["train"]) == 0 or len(parts["val"]) == 0:
            raise DataError(f"dataset {name!r} is too small for the requested splits")
        X, feature_names, categories, keep = features(table, parts["train"], schema)
        if keep is not None:
            parts = {s: ix[keep[ix]] for s, ix in parts.items()}
        info = DataInfo(name=name, kind=kind, in_shape=(X.shape[1],), num_classes=len(class_names),
                        class_names=list(class_names), feature_names=feature_names, target_name=table.target_name,
                        true_weights=dict(table.truth or {}))
        spec.check(info)

        if given:
            if "mean" in stats and stats["mean"].shape[-1] != X.shape[1]:
                raise DataError(f"dataset {name!r} has {X.shape[1]} features but the checkpoint was trained on "
                                f"{stats['mean'].shape[-1]}")
        else:
            if spec.standardize:
                stats.update(mean_std(X[parts["train"]]))
                if kind == "regression":
                    t = mean_std(y.reshape(len(y), -1)[parts["train"]])
                    stats.update(target_mean=t["mean"], target_std=t["std"])
            if table.source is not None:  # a file: eval may read another one, matched by these names
                stats["table"] = {"kind": kind, "target": table.target_name, "classes": list(class_names),
                                  "columns": list(table.feature_names), "categories": categories}
        # float64 stats, applied the same way in training and in eval, so eval reproduces exactly
        Xs = (X - stats["mean"].double().numpy()) / stats["std"].double().numpy() if "mean" in stats else X

        if kind == "classification":
            y_t = torch.as_tensor(y.astype(np.int64))
        else:
            y_t = torch.as_tensor(y.astype(np.float32)).reshape(len(y), -1)  # (N, T), in the data's units
        X_t = torch.as_tensor(Xs, dtype=torch.float32)
        splits = {s: (X_t[torch.as_tensor(ix)], y_t[torch.as_tensor(ix)]) for s, ix in parts.items() if len(ix)}
        if kind == "regression" and "target_mean" in stats:
            info.target_mean = stats["target_mean"].double().flatten().tolist()
            info.target_std = stats["target_std"].double().flatten().tolist()
        return Data(info=info, splits=splits, stats=stats)


def mean_std(a: np.ndarray) -> dict[str, torch.Tensor]:
    """Per-column mean and std (float64) of the training rows; a constant column keeps std 1."""
    std = a.std(0)
    return {"mean": torch.from_numpy(a.mean(0)), "std": torch.from_numpy(np.where(std > 1e-12, std, 1.0))}
