"""Tasks: importing this package registers classification and regression in TASKS."""
from ..registry import TASKS
from . import classification, regression  # noqa: F401
from .base import Task


def build_task(cfg, info) -> Task:
    return TASKS.get(info.kind).fn(info, cfg)


__all__ = ["Task", "build_task"]
