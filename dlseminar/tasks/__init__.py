"""Tasks: importing this package registers classification, regression, segmentation and detection in TASKS.

Each task is a package: task.py (the Task, registered when the package is imported) and, where it
draws any, plots.py."""
from ..registry import TASKS
from . import classification, detection, regression, segmentation  # noqa: F401
from .base import Task


def build_task(cfg, info) -> Task:
    return TASKS.get(info.kind).fn(info, cfg)


__all__ = ["Task", "build_task"]
