"""Semantic segmentation: the task (task.py) and its plots (plots.py)."""
from . import task  # noqa: F401  (registers the task)
