"""Datasets: the readers (generate, download, decode). Importing this package registers every dataset
in DATASETS; each reader returns Samples (data/core.py) of one task's kind, which split themselves."""
from __future__ import annotations

import inspect

from ..data import Data, Samples, SplitSpec
from ..errors import ConfigError
from ..registry import DATASETS, call_builder
from . import folder, images, synthetic, tabular, vision  # noqa: F401
from . import seg_folder, segmentation, voc  # noqa: F401
from . import coco, detection  # noqa: F401

COMMON = ("name", "val_split", "test_split", "standardize", "augment")


def build_data(cfg, stats=None, expect=None) -> Data:
    """Read cfg.data.name and split it. `stats` (from a checkpoint) replace fitting them, and `expect`
    (the checkpoint's check of the data's description) runs before they are applied."""
    entry = DATASETS.get(cfg["data.name"])
    given = {}
    params = inspect.signature(entry.fn).parameters
    if "seed" in params:
        given["seed"] = cfg["seed"]
    if "task" in params:
        given["task"] = cfg["task"]
    if "schema" in params:  # a file read for a checkpoint: its target, columns and kind by name
        given["schema"] = (stats or {}).get("table")
    samples = call_builder(entry, cfg, "data", common=COMMON, **given)
    if not isinstance(samples, Samples):  # a plug-in reader's mistake, not the user's
        raise TypeError(f"dataset {entry.name!r} returned {type(samples).__name__}, not data.Samples")
    task = cfg["task"]
    if task != "auto" and task not in samples.kinds:
        raise ConfigError(f"dataset {entry.name!r} is for {' or '.join(samples.kinds)} (task: {task})")
    spec = SplitSpec(name=entry.name, task=task, val=cfg["data.val_split"], test=cfg["data.test_split"],
                     standardize=cfg["data.standardize"], seed=cfg["seed"], stats=stats, expect=expect)
    return samples.split(spec)


__all__ = ["build_data"]
