"""Regression: the task (task.py)."""
from . import task  # noqa: F401  (registers the task)
