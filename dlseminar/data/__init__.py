"""The data layer under every task and reader: Samples (a reader's result) and their split into Data,
the batch loaders, per-channel image stats, and the table shared by classification and regression.

Nothing here registers anything or imports a reader, so tasks/ and datasets/ both build on it."""
from .core import SPLITS, BatchNorm, Data, DataInfo, Samples, SplitSpec, check_split, split_indices
from .loader import BatchPlan, TensorLoader
from .table import Table

__all__ = ["SPLITS", "BatchNorm", "BatchPlan", "Data", "DataInfo", "Samples", "SplitSpec", "Table", "TensorLoader",
           "check_split", "split_indices"]
