"""Data, task and model for a config (a Setup), on the device the config names.

`build` is the one place a run, an evaluation, a prediction, lr-find and the benchmarks get their
pieces from: the data through its registered reader and split, the Task registered for the data's
kind, the model from the zoo. A checkpoint's data description and stats make it rebuild what
training saw.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from . import collector, finetune, memory
from .catalog import load_all
from .config import Config
from .data import Data, TensorLoader
from .datasets import build_data
from .engine import distributed
from .errors import ConfigError
from .models import build_model
from .tasks import Task, build_task


def pick_device(name: str) -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU; an explicit device that is missing is a config error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name} requested but CUDA is not available here; use --device cpu or auto")
        idx = int(name.split(":")[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise ConfigError(f"device {name} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if name == "mps" and not has_mps:
        raise ConfigError("device mps requested but Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_determinism(on: bool) -> None:
    """train.deterministic: only deterministic kernels (an op without one raises), no cuDNN autotuning.

    CUBLAS_WORKSPACE_CONFIG must be in the environment before cuBLAS starts; build() calls this
    before the model or any tensor reaches a GPU. Off: cuDNN may benchmark and pick the fastest
    (possibly non-deterministic) algorithms; on the CPU both give the same results here.
    """
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


@dataclass
class Setup:
    cfg: Config
    data: Data
    task: Task
    model: torch.nn.Module
    device: torch.device

    def loader(self, split: str, train: bool = False) -> TensorLoader:
        if split not in self.data.splits:
            raise ConfigError(f"this run has no {split} split (data.{split}_split is 0)")
        bs = self.cfg["train.batch_size"] if train else self.cfg["train.eval_batch_size"]
        return self.data.loader(split, bs, shuffle=train, seed=self.cfg["seed"], device=self.device,
                                augment=self.cfg["data.augment"] if train else ())


def build(cfg: Config, stats=None, info=None, load_data: bool = True) -> Setup:
    """Data, task and model for `cfg` (stats/info from a checkpoint when evaluating or resuming).

    load_data=False (predicting from a checkpoint): no dataset is read; the checkpoint's data
    description and normalisation stats are all that new inputs need. Without `info` (no checkpoint's
    weights will replace the model's) model.init_from and model.freeze apply here (finetune.prepare).
    """
    load_all()
    set_determinism(cfg["train.deterministic"])
    device = distributed.local_device(pick_device(cfg["device"]))  # under torchrun: this process's GPU
    seed_all(cfg["seed"])
    if load_data:
        memory.check_dataset(cfg)  # a generated dataset too big for RAM: refused before it is made
        # a checkpoint's description of its data is checked as soon as the data's is known, before its
        # fitted stats are applied: a mismatch is said as "4 features" vs "64 features", not as a shape
        expect = None if info is None else partial(check_compatible, info)
        data = build_data(cfg, stats, expect)
        from .data.augment import check as check_augment

        check_augment(cfg["data.augment"], data)
    else:
        data = _described_data(info, stats)
    task = build_task(cfg, data.info)
    torch.manual_seed(cfg["seed"])  # weight init does not depend on how much the data drew
    memory.check_model(cfg, data.info.in_shape, task.num_outputs, task.output_kind, device)  # before one weight exists
    model = build_model(cfg, data.info.in_shape, task.num_outputs, task.output_kind).to(device)
    finetune.prepare(model, cfg, fresh=info is None)
    collector.settle()  # everything loaded so far lives to the end: later collections skip it
    return Setup(cfg, data, task, model, device)


def _described_data(info: dict, stats: dict) -> Data:
    """A Data with no samples: what the checkpoint says about its inputs, for predicting on new files."""
    from dataclasses import fields

    from .data import DataInfo

    known = {f.name for f in fields(DataInfo)}
    d = DataInfo(**{k: v for k, v in info.items() if k in known})
    d.in_shape = tuple(d.in_shape)
    # raw inputs normalised per batch (images) carry their scale in the stats; tables were standardised
    return Data(info=d, splits={}, stats=dict(stats), per_batch="scale" in stats)


def check_compatible(saved: dict, now) -> None:
    """The data `now` has the kind, input shape and classes of the checkpoint's (`saved`: its data_info)."""
    why = data_mismatch(saved, now)
    if why:
        raise ConfigError(why)


def data_mismatch(saved: dict, now) -> str | None:
    """How the data differs from the checkpoint's, in the user's words ("4 features" vs "64 features")."""
    if saved.get("kind") != now.kind:
        return (f"dataset {now.name!r} is for {now.kind} but the checkpoint was trained for {saved.get('kind')} "
                f"({saved.get('name')})")
    ours, theirs = [], []
    if tuple(saved["in_shape"]) != tuple(now.in_shape):
        ours.append("inputs of " + _inputs(now.in_shape))
        theirs.append(_inputs(saved["in_shape"]))
    if saved.get("num_classes", 0) != now.num_classes:
        names = [str(c) for c in now.class_names]
        shown = f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""
        ours.append(f"{now.num_classes} classes{shown}")
        theirs.append(f"{saved.get('num_classes', 0)} classes")
    if not ours:
        return None
    return (f"dataset {now.name!r} has {' and '.join(ours)} but the checkpoint was trained on "
            f"{' and '.join(theirs)} ({saved.get('name')})")


def _inputs(shape) -> str:
    """An input shape as a reader says it: 4 features, 3x32x32 images."""
    shape = tuple(shape)
    if len(shape) == 1:
        return f"{shape[0]} feature{'' if shape[0] == 1 else 's'}"
    return "x".join(map(str, shape)) + (" images" if len(shape) == 3 else " values")
