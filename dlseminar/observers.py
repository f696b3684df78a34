"""Observers: things that watch a training run without taking part in its optimisation.

Training health, the decision-boundary animation and TensorBoard logging are observers. The
Trainer calls step_end after each optimizer step and epoch_end after each epoch's validation,
and keeps state_dict() in last.pt under the observer's name, so a resumed run continues what
it recorded (an observer turned on only at the resume starts empty). run.py calls summarize
before the plots are drawn and finish after, then close whatever happened.

Adding one is a decorated factory in OBSERVERS that returns an Observer or None (not wanted
for this run), in a module that catalog.build_observers imports: no branches in the Trainer or
run.py. The observer modules import this one; it imports none of them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:  # only named in annotations: summary.py loads the tasks, which import this module
    from .summary import RunSummary

# factory(setup, optimizer, main, run_dir) -> Observer | None; main: this process writes files (rank 0)
OBSERVERS = Registry("observer", "logging / train.health")


class Observer:
    name = ""
    wants_steps = False  # True: step_end is called after every optimizer step

    def step_end(self, step: int, loss: float, lr: float) -> None:
        """`loss`: the step's mean training loss (over all processes under DDP)."""

    def epoch_end(self, epoch: int, model, row: dict) -> None:
        """`row`: the epoch's metrics.csv row (train and val metrics, lr); observers may add keys."""

    def summarize(self, summary: RunSummary) -> None:
        """Add to summary.json by setting the summary's declared fields (before the plots are drawn from it);
        a part no field holds yet is a new field of RunSummary."""

    def finish(self, run_dir: Path, summary: RunSummary) -> None:
        """After the test split and the plots: write files; list plots in summary.plots."""

    def close(self) -> None:
        """Always called at the end of the run, also after an error or interrupt."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass
