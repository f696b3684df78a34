"""Everything registered, in one place: the modules that fill the registries, loaded on demand.

registry.py only defines the registries, so that the modules that register into them (models,
datasets, losses, optimizers, schedules, tasks, observers) may import it without an import cycle.
This module imports those modules; nothing below the commands imports it. Every import here
stands inside a function: torch loads when a command needs the names, never for `dlsem --help`.
"""
from __future__ import annotations

from pathlib import Path


def load_all() -> None:
    """Import every module that registers a model, dataset, loss, optimizer, schedule or task."""
    from . import datasets, engine, models, tasks  # noqa: F401  (they register themselves)


def choices() -> dict[str, list[str]]:
    """Config key -> the names it takes, read from the registries (what `dlsem config show` lists).

    Loads every registry (imports torch): only where the names are printed, never for `--help`.
    """
    from .registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULES, TASKS, backbones

    load_all()
    losses = set(LOSSES.names()).union(*(e.fn.losses() for e in TASKS.entries()))  # + a task's own (rcnn)
    return {
        "task": TASKS.names(), "model.name": MODELS.names(), "data.name": DATASETS.names(),
        "loss.name": sorted(losses), "optim.name": OPTIMIZERS.names(), "sched.name": SCHEDULES.names(),
        "model.backbone": backbones(),
    }


def build_observers(setup, optimizer, main: bool, run_dir: Path) -> list:
    """The observers (observers.py) this run's config asks for (by name: the order does not matter)."""
    from . import boundary, health, tensorboard_log  # noqa: F401  (they register themselves)
    from .observers import OBSERVERS

    made = (entry.fn(setup, optimizer, main, Path(run_dir)) for entry in OBSERVERS.entries())
    return [ob for ob in made if ob is not None]
