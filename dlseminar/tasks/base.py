"""The Task: everything that depends on what the labels are (loss form, metrics, plots).

The Engine only calls training_step / eval_step / new_metrics; it never looks inside a batch.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..registry import LOSSES, call_builder


class Task:
    kind = "base"
    draws_boundary = False  # predicts class probabilities: 2-D inputs get a decision-boundary animation
    output_kind = "values"  # 'scores': the model returns logits and the task applies the link
    default_loss = "mse"
    monitor, mode = "val/loss", "min"
    # every key new_metrics(...).compute() can return, with its direction (what early_stop.monitor
    # may watch as val/<key>); tests/unit/test_config_strict.py holds each task to it
    metric_modes: dict[str, str] = {"loss": "min"}
    supported: tuple[str, ...] = ()  # loss input forms this task can prepare (see engine/losses.py)

    def __init__(self, info, cfg):
        self.info = info
        name = cfg["loss.name"]
        self.loss_name = self.default_loss if name == "auto" else name
        entry = LOSSES.get(self.loss_name)
        self.wants = entry.meta["wants"]
        if self.wants not in self.supported:
            raise ConfigError(f"loss {self.loss_name!r} does not fit a {self.kind} task; "
                              f"choose from: {', '.join(self.losses())}")
        self.loss_fn = call_builder(entry, cfg, "loss", common=("name", "l1", "l2", "aux_weight"))
        weights = cfg["loss.class_weights"]
        if weights and len(weights) != info.num_classes:
            names = f" ({', '.join(info.class_names)})" if info.class_names else ""
            raise ConfigError(f"loss.class_weights has {len(weights)} values but the data has {info.num_classes} classes{names}")
        self.aux_weight = cfg["loss.aux_weight"]
        self.num_outputs = self.outputs_for(self.wants)

    @classmethod
    def losses(cls) -> list[str]:
        return [e.name for e in LOSSES.entries() if e.meta["wants"] in cls.supported]

    # -- to be provided by each task
    def outputs_for(self, wants: str) -> int:
        raise NotImplementedError

    def prepare(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw model outputs and labels -> the (prediction, target) pair self.loss_fn wants."""
        raise NotImplementedError

    def new_metrics(self):
        raise NotImplementedError

    # -- shared
    def metric_names(self) -> list[str]:
        """The keys compute() returns for this data (a task whose metrics depend on it narrows the list)."""
        return list(self.metric_modes)

    def monitor_mode(self, cfg) -> tuple[str, str]:
        """early_stop.monitor and its direction (min or max), checked before any training.

        auto: the task's own monitor and mode. Otherwise a metric this run records each epoch
        (val/<metric>, or train/loss), its direction from the task's declaration unless
        early_stop.mode says.
        """
        monitor, mode = cfg["early_stop.monitor"], cfg["early_stop.mode"]
        if monitor == "auto":
            return self.monitor, self.mode if mode == "auto" else mode
        modes = {f"val/{k}": self.metric_modes[k] for k in self.metric_names()}
        modes["train/loss"] = "min"
        if monitor not in modes:
            from ..config_values import short
            from ..registry import suggest

            what = (" is not recorded for this data" if monitor.removeprefix("val/") in self.metric_modes
                    else f" is not a metric of the {self.kind} task{suggest(monitor, modes)}")  # e.g. top5 of 3 classes
            raise ConfigError(f"early_stop.monitor {short(monitor)}{what}; choose one of {', '.join(modes)}")
        return monitor, modes[monitor] if mode == "auto" else mode

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(*self.prepare(out, y))

    def training_step(self, model, batch) -> tuple[torch.Tensor, int]:
        """Data loss (before penalties) of one batch, and how many samples it held.

        A model with auxiliary heads (GoogLeNet) returns (main, aux1, aux2) in training;
        their losses are added with weight loss.aux_weight (0.3 in the paper), and both parts
        are kept for train_logs(): the main head's loss and the heads' mean auxiliary loss.
        """
        x, y = batch
        out = model(x)
        if isinstance(out, (tuple, list)):
            main, *aux = out
            main_loss, aux_sum = self.loss(main, y), sum(self.loss(a, y) for a in aux)
            parts = self.__dict__.setdefault("_aux_parts", [])  # per batch: ((main, aux mean), samples)
            parts.append((torch.stack([main_loss.detach(), aux_sum.detach() / len(aux)]).float(), len(y)))
            return main_loss + self.aux_weight * aux_sum, len(y)
        return self.loss(out, y), len(y)

    def eval_step(self, model, batch, metrics) -> None:
        x, y = batch
        out = model(x)
        if isinstance(out, (tuple, list)):  # auxiliary heads are dropped at evaluation
            out = out[0]
        metrics.update(out, y, self.loss(out, y))

    def predict(self, model, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def reference_loss(self) -> float | None:
        """The loss of a model that learned nothing (the diagnosis's yardstick for underfitting);
        None when the task has none that holds for every dataset."""
        return None

    def train_logs(self) -> dict[str, float]:
        """Extra per-epoch training numbers (e.g. a detector's loss parts), called by the Trainer after
        each training epoch; logged as train/<key>. The task resets what it accumulated.

        With auxiliary heads: main_loss and aux_loss (the heads' mean, unweighted), each the mean over
        the epoch's samples of its finite batches (one host sync); train/loss = main_loss +
        loss.aux_weight x heads x aux_loss."""
        parts = self.__dict__.pop("_aux_parts", [])
        if not parts:
            return {}
        values = torch.stack([v for v, _ in parts]).double().cpu()  # (batches, 2)
        n = torch.tensor([k for _, k in parts], dtype=torch.float64)[:, None].expand_as(values)
        ok = values.isfinite()  # a skipped non-finite batch (train.on_nan: skip) does not spoil the epoch's mean
        means = (values.where(ok, 0) * n).sum(0) / (n * ok).sum(0)
        return {"main_loss": float(means[0]), "aux_loss": float(means[1])}

    def plots(self, folder, model, data, device) -> list[str]:
        """Write the task's own plots into `folder`; return their file names."""
        return []

    def details(self, metrics) -> tuple[list[str], list[list]] | None:
        """An optional per-class table (header, rows) for `dlsem eval`."""
        return None

    # -- `dlsem predict` on image files: tasks that take them set predicts_images and override these
    predicts_images = False

    def predict_size(self, info) -> tuple[int, int] | None:
        """(H, W) every input image is resized to; None: each image keeps its own size."""
        return tuple(info.in_shape[1:])

    def describe(self, output: torch.Tensor, top_k: int) -> dict:
        """One image's prediction (task.predict's output for it, on the CPU) as a JSON-ready dict."""
        raise NotImplementedError

    def write_prediction(self, folder, index: int, stem: str, x: torch.Tensor, output: torch.Tensor, result: dict,
                         data) -> dict:
        """Write one image's output files into `folder` (x: the raw input); returns {key: path} for its result."""
        return {}

    def prediction_table(self, results: list[dict]) -> tuple[list[str], list[list[str]]]:
        """(header, rows) that `dlsem predict` prints for these results."""
        raise NotImplementedError
