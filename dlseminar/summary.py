"""The run summary: what `dlsem train` writes to runs/<name>/summary.json, as a typed record.

`run.py` builds one at the end of a run and the observers set its optional fields (health, plots);
`compare`, `report`, `sweep`, `zoo`, the plots and the CLI read its fields as attributes. It is not
a mapping: a part of summary.json that nothing declares yet is a new field here. `to_json()` writes exactly the file `dlsem train` has always written (same
keys, same order, same values), and `from_json()` reads today's files and older ones: a key a
file lacks is None (or an empty dict), a key this class does not declare is kept in `extra`, so a
summary read and written again is the same file, byte for byte.

Types are not checked here: `runfiles.read_summary` is the strict reader of files a user may
have edited; this class only gives the keys names. `print_summary` is what `dlsem train` prints
at the end of a run (and a sweep into each member's train.log).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

# the keys every run writes, in the order it writes them (rank 0 at the end of `_fit`)
CORE = ("name", "task", "model", "dataset", "loss", "optimizer", "device", "params", "epochs_run", "best_epoch",
        "patience", "stopped_early", "stop_reason", "monitor", "mode", "best", "test", "test_details",
        "test_checkpoint", "restored_best", "seconds", "processes")


@dataclass(eq=True)
class RunSummary:
    """One run's summary.json. The optional parts after `processes` are set by observers and models
    (training health, a perceptron's weights, the plots drawn) and are None when the run has none."""

    name: str | None = None
    task: str | None = None
    model: str | None = None
    dataset: str | None = None
    loss: str | None = None
    optimizer: str | None = None
    device: str | None = None
    params: int | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None  # None: no epoch had a finite monitor
    patience: int | None = None
    stopped_early: bool | None = None
    stop_reason: str | None = None
    monitor: str | None = None  # e.g. "val/acc"
    mode: str | None = None  # "min" or "max"; read it through direction()
    best: dict = field(default_factory=dict)  # val/... metrics at the best epoch
    test: dict = field(default_factory=dict)  # test/... metrics with the weights tested
    test_details: dict | None = None  # {"columns": [...], "rows": [[...], ...]}: the per-class table
    test_checkpoint: str | None = None  # "best.pt" or "last.pt"
    restored_best: bool | None = None
    seconds: float | None = None
    processes: int | None = None
    health: dict | None = None  # the health observer's per-epoch lists (train.health)
    weights: dict | list | None = None  # a perceptron's {"w0", "w"} in original units (one per output: a list)
    true_weights: dict | None = None  # the generated data's own {"w0", "w"} (linear, plane), beside `weights`
    plots: list | None = None  # files under the run directory: "plots/curves.png", the boundary GIF, ...
    # what the curves show (diagnosis.py): {"kind": "overfitting", "line": "overfitting since epoch 12: ...",
    # "epoch": 12}; None in summaries written before it was read
    diagnosis: dict | None = None
    extra: dict = field(default_factory=dict)  # keys this class does not know (newer or hand-added)
    # summary.json's keys in the order they were read or first set, as the dict it replaces kept them
    _order: list | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """The summary.json object: the keys in the order they were read (or written by a run)."""
        return {k: self.extra[k] if k in self.extra else getattr(self, k) for k in self._keys()}

    def to_json(self) -> str:
        """The text of summary.json (values JSON cannot hold, written as text as before)."""
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> RunSummary:
        """A summary from a summary.json object, of any age: missing keys take their defaults."""
        return cls(**{k: v for k, v in d.items() if k in FIELDS},
                   extra={k: v for k, v in d.items() if k not in FIELDS}, _order=list(d))

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        """A summary from the text of a summary.json (a JSON object)."""
        return cls.from_dict(json.loads(text))

    # ---------------------------------------------------------------- reading
    def direction(self, configured: str | None = None) -> str:
        """"min" or "max": which way the monitor improves.

        Runs record the direction they trained with in `mode`. A summary written before it was recorded
        falls back, in this order, to: the run's configured early_stop.mode (`configured`; it overrode
        the Task's); the direction its Task (`task`, as registered in TASKS) declares for the monitored
        metric in `metric_modes`; and only for a summary whose task is unknown here (missing, not
        registered, or not declaring that metric), the rule the Trainer used then: min for losses and
        errors (mse, mae, rmse), max otherwise. That last fallback is the only place left that
        guesses a direction from a name."""
        if self.mode in ("min", "max"):
            return self.mode
        if configured in ("min", "max"):
            return configured
        declared = _declared_mode(self.task, self.monitor)
        if declared is not None:
            return declared
        monitor = self.monitor if isinstance(self.monitor, str) else ""
        return "min" if monitor.endswith("loss") or monitor.split("/")[-1] in ("mse", "mae", "rmse") else "max"

    # ---------------------------------------------------------------- the order of summary.json's keys
    def __post_init__(self):
        if self._order is None:  # built by a run: CORE, then the optional parts given, in declaration order
            self._order = list(CORE) + [n for n in FIELDS if n not in CORE and getattr(self, n) != _default(n)]

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        order = self.__dict__.get("_order")  # None while __init__ runs
        if order is not None and name in FIELDS and name not in order:
            order.append(name)

    def _keys(self) -> list[str]:
        """summary.json's keys: the fields read or set (in that order), then `extra` keys added since."""
        keys = [k for k in self._order if k in FIELDS or k in self.extra]
        return keys + [k for k in self.extra if k not in keys]


# the summary.json keys the class declares, in order
FIELDS = tuple(f.name for f in fields(RunSummary) if f.name not in ("extra", "_order"))


def _declared_mode(task, monitor) -> str | None:
    """The direction the registered Task named `task` declares for the monitor's metric ("val/acc" ->
    its metric_modes["acc"]); None when the task or the metric is not known here."""
    if not isinstance(task, str) or not isinstance(monitor, str):  # a hand-edited file may hold anything
        return None
    # the tasks register themselves on import (torch with them): only summaries without `mode` come here
    from . import tasks  # noqa: F401
    from .registry import TASKS

    if task not in TASKS:
        return None
    return TASKS.get(task).fn.metric_modes.get(monitor.split("/", 1)[-1])


def _default(name: str):
    f = RunSummary.__dataclass_fields__[name]
    return f.default_factory() if callable(f.default_factory) else f.default


def print_summary(run_dir: Path, s: RunSummary) -> None:
    """What `dlsem train` prints when a run ends (a sweep writes the same into each member's train.log)."""
    from rich.markup import escape

    from .streams import console

    c = console(highlight=False)
    c.print(f"[bold]{s.stop_reason}[/bold]; best epoch {s.best_epoch} of {s.epochs_run}"
            + (" (best weights restored)" if s.restored_best else ""))
    for part, metrics in (("best", s.best), ("test", s.test)):
        if metrics:
            c.print(f"{part:5s} " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if s.diagnosis:
        c.print(f"diagnosis: {escape(str(s.diagnosis.get('line', '')))}")
    if s.weights is not None:
        c.print(f"weights (original units): {s.weights}")
        ratios = weight_ratios(s.weights)
        if s.task == "regression":  # the weights themselves are the answer: y = w0 + w.x
            if s.true_weights:
                c.print(f"the data's true plane: {s.true_weights}")
        elif ratios:  # a class boundary's weights count only up to a factor: compare their ratios
            truth = weight_ratios(s.true_weights) if s.true_weights else None
            c.print(f"w0 : w1 : w2 ... as ratios to w1: {ratios}"
                    + (f"  (the data's true line: {truth})" if truth else ""))
    c.print(f"run directory: {escape(str(run_dir))}  ({s.seconds:.1f}s)")


def weight_ratios(weights) -> str | None:
    """A single neuron's w0 : w1 : w2 ... divided by w1 ("-1.77 : 1 : 1.80"): the slide's form, in which
    a separating line's weights are only defined up to a factor. None for several outputs or w1 = 0."""
    if not isinstance(weights, dict) or not weights.get("w"):
        return None
    w1 = weights["w"][0]
    if not w1:
        return None
    return " : ".join(f"{v / w1:.2f}" if i != 1 else "1" for i, v in enumerate([weights["w0"], *weights["w"]]))
