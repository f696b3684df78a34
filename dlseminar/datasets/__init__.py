"""Datasets: importing this package registers every dataset in DATASETS."""
from __future__ import annotations

from ..errors import ConfigError
from ..registry import DATASETS, call_builder
from . import folder, images, synthetic, tabular, vision  # noqa: F401
from . import seg_folder, segmentation, voc  # noqa: F401
from . import coco, detection  # noqa: F401
from .base import Data, DataInfo, Table, TensorLoader, split_table

COMMON = ("name", "val_split", "test_split", "standardize", "augment")


def build_data(cfg, stats=None) -> Data:
    """Load cfg.data.name and split it; `stats` (from a checkpoint) replaces fitting them."""
    entry = DATASETS.get(cfg["data.name"])
    import inspect

    given = {}
    params = inspect.signature(entry.fn).parameters
    if "seed" in params:
        given["seed"] = cfg["seed"]
    if "task" in params:
        given["task"] = cfg["task"]
    if "schema" in params:  # a file read for a checkpoint: its target, columns and kind by name
        given["schema"] = (stats or {}).get("table")
    out = call_builder(entry, cfg, "data", common=COMMON, **given)
    if isinstance(out, Table):
        out = split_table(out, entry.name, cfg["task"], cfg["data.val_split"], cfg["data.test_split"],
                          cfg["data.standardize"], cfg["seed"], stats)
    elif isinstance(out, images.Images):
        if cfg["task"] not in ("auto", "classification"):
            raise ConfigError(f"dataset {entry.name!r} is for classification (task: {cfg['task']})")
        out = images.split_images(out, entry.name, cfg["data.val_split"], cfg["data.test_split"],
                                  cfg["data.standardize"], cfg["seed"], stats)
    elif isinstance(out, segmentation.SegImages):
        if cfg["task"] not in ("auto", "segmentation"):
            raise ConfigError(f"dataset {entry.name!r} is for segmentation (task: {cfg['task']})")
        out = segmentation.split_seg(out, entry.name, cfg["data.val_split"], cfg["data.test_split"],
                                     cfg["data.standardize"], cfg["seed"], stats)
    elif isinstance(out, detection.DetImages):
        if cfg["task"] not in ("auto", "detection"):
            raise ConfigError(f"dataset {entry.name!r} is for detection (task: {cfg['task']})")
        out = detection.split_det(out, entry.name, cfg["data.val_split"], cfg["data.test_split"],
                                  cfg["data.standardize"], cfg["seed"], stats)
    return out


__all__ = ["Data", "DataInfo", "Table", "TensorLoader", "build_data", "split_table"]
