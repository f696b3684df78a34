"""One run, end to end: config -> registries -> Task -> Engine -> run directory.

`train` and `evaluate` are what the CLI calls; both rebuild everything from a Config,
so a checkpoint (which stores its config) is enough to evaluate or resume.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import registry
from .config import SCHEMA, Config, resolve
from .errors import CheckpointError, ConfigError, UserError
from .datasets import Data, TensorLoader, build_data
from .engine import amp, distributed
from .engine import checkpoint as ckpt
from .engine.optim import LRSchedule, build_optimizer
from .engine.trainer import Trainer
from .engine.trainer import evaluate as evaluate_loader
from .models import build_model
from .tasks import Task, build_task

# Keys that `--resume` may change; anything else must match the checkpoint.
# precision, channels_last, compile and sync_batchnorm are speed settings (like the number of processes,
# which a resume may change too); train.accumulate changes the optimisation and must match.
RESUMABLE = ("train.epochs", "train.on_nan", "early_stop.patience", "early_stop.min_delta", "logging.", "checkpoint.", "device",
             "train.eval_batch_size", "train.precision", "train.channels_last", "train.compile", "train.sync_batchnorm")


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
    description and normalisation stats are all that new inputs need.
    """
    registry.load_all()
    set_determinism(cfg["train.deterministic"])
    device = distributed.local_device(pick_device(cfg["device"]))  # under torchrun: this process's GPU
    seed_all(cfg["seed"])
    if load_data:
        data = build_data(cfg, stats)
        from .datasets.augment import check as check_augment

        check_augment(cfg["data.augment"], data.info.kind, data.per_batch)
        if info is not None:
            _check_compatible(info, data.info)
    else:
        data = _described_data(info, stats)
    task = build_task(cfg, data.info)
    torch.manual_seed(cfg["seed"])  # weight init does not depend on how much the data drew
    model = build_model(cfg, data.info.in_shape, task.num_outputs, task.output_kind).to(device)
    return Setup(cfg, data, task, model, device)


def _described_data(info: dict, stats: dict) -> Data:
    """A Data with no samples: what the checkpoint says about its inputs, for predicting on new files."""
    from dataclasses import fields

    from .datasets.base import DataInfo

    known = {f.name for f in fields(DataInfo)}
    d = DataInfo(**{k: v for k, v in info.items() if k in known})
    d.in_shape = tuple(d.in_shape)
    data = Data(info=d, splits={}, stats=dict(stats), per_batch=len(d.in_shape) == 3)
    data.palette = stats.get("palette")
    return data


def _check_compatible(saved: dict, now) -> None:
    for key in ("kind", "in_shape", "num_classes"):
        a, b = saved.get(key), getattr(now, key)
        if key == "in_shape":
            a, b = tuple(a), tuple(b)
        if a != b:
            raise ConfigError(f"dataset {now.name!r} has {key} {b} but the checkpoint was trained with {a}")


def new_run_dir(cfg: Config, overwrite: bool) -> Path:
    """--out as given (refusing a non-empty one without --overwrite), else runs/<name>[-N]."""
    if cfg["out"]:
        d = Path(cfg["out"])
        if d.exists() and not d.is_dir():
            raise ConfigError(f"--out {str(d)!r} exists and is not a directory")
        if d.exists() and any(d.iterdir()) and not overwrite:
            raise ConfigError(f"run directory {str(d)!r} already exists and is not empty; pass --overwrite or choose another --out")
    else:
        base = Path("runs") / cfg["name"]
        d, n = base, 2
        while d.exists() and any(d.iterdir()):
            d, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        (d / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run directory {str(d)!r}: {e.strerror or e}") from None
    return d


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write_config(path: Path, cfg: Config) -> None:
    import yaml

    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None))


def train(cfg: Config, resume: str | None = None, overwrite: bool = False, sets=(), named=None) -> tuple[Path, dict]:
    """Train `cfg` (or continue the run of `resume`); returns the run directory and summary."""
    saved = None
    if resume:
        saved = ckpt.load(resume)
        if "optimizer" not in saved:
            raise CheckpointError(f"{resume!r} holds weights only (a best.pt); resume from the run's last.pt")
        cfg = resume_config(saved, sets, named or {})
        run_dir = Path(resume).resolve().parent
        ckpt.remove_stale_temps(run_dir)
    setup = build(cfg, saved and saved["data_stats"], saved and saved["data_info"])
    dist = distributed.init(setup.device)  # None unless torchrun started several processes
    try:
        return _train(cfg, setup, dist, saved, run_dir if resume else None, overwrite)
    finally:
        if dist is not None:
            distributed.shutdown()


def _train(cfg: Config, setup: Setup, dist, saved, run_dir, overwrite):
    main = dist is None or dist.main
    world = 1 if dist is None else dist.world
    amp.check(cfg["train.precision"], setup.device, quiet=not main)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in setup.model.modules())
    if has_bn and cfg["train.batch_size"] != "full" and cfg["train.batch_size"] < 2 * world and not (world > 1 and cfg["train.sync_batchnorm"]):
        per = "" if world == 1 else f" per process ({world} processes share train.batch_size)"
        raise ConfigError(f"batch norm needs batches of 2 or more samples{per}; use a larger train.batch_size or turn batch norm off")
    train_loader = setup.loader("train", train=True)
    if dist is not None:
        if not hasattr(train_loader, "shard"):
            raise ConfigError(f"dataset {cfg['data.name']!r} does not support multi-process training (its loader cannot shard)")
        train_loader.shard(dist.rank, dist.world)
    val_loader = setup.loader("val")
    opt = build_optimizer(cfg, setup.model)
    sched = LRSchedule(opt, cfg, math.ceil(len(train_loader) / cfg["train.accumulate"]), cfg["train.epochs"])
    if run_dir is None:  # only now that every piece is known to build: no empty run dirs from mistakes
        made = None
        if main:
            try:
                made = new_run_dir(cfg, overwrite)
                ckpt.remove_stale_temps(made)  # --overwrite of a run killed while writing
            except UserError as e:
                made = e
        if dist is not None:  # rank 0 chose the directory (runs/<name>-N); the others learn it
            made = distributed.broadcast_object(made if main else None)
        if isinstance(made, UserError):
            raise made
        run_dir = made
    if main:
        write_config(run_dir / "config.yaml", cfg)
    meta = {"config": cfg.to_dict(), "data_info": asdict(setup.data.info), "data_stats": setup.data.stats,
            "num_outputs": setup.task.num_outputs}
    from .observers import build_observers

    observers = build_observers(setup, opt, main, run_dir)  # health, boundary frames, TensorBoard: as configured
    trainer = Trainer(setup.model, setup.task, opt, sched, setup.device, cfg, run_dir, meta, dist=dist,
                      observers=observers)
    try:
        return _fit(cfg, setup, trainer, saved, train_loader, val_loader, run_dir, main, world)
    finally:
        for ob in observers:
            ob.close()


def _fit(cfg: Config, setup: Setup, trainer: Trainer, saved, train_loader, val_loader, run_dir: Path, main: bool,
         world: int):
    """Train, then (rank 0) test with the best weights, draw the plots and write summary.json."""
    if saved:
        trainer.restore(saved)
    t0 = time.perf_counter()
    state = trainer.fit(train_loader, val_loader, cfg["train.epochs"])
    seconds = time.perf_counter() - t0
    if not main:
        return run_dir, None  # rank 0 evaluates the test split and writes the summary and plots

    es = trainer.es
    use_best = cfg["early_stop.restore_best"] and es.best_state is not None
    if use_best:
        setup.model.load_state_dict(es.best_state)
    test, details = {}, None
    if "test" in setup.data.splits:
        metrics = evaluate_loader(setup.model, setup.task, setup.loader("test"), setup.device, trainer.autocast)
        test = {f"test/{k}": v for k, v in metrics.compute().items()}
        table = setup.task.details(metrics)  # the per-class table `dlsem eval` prints, kept for reports
        details = None if table is None else {"columns": table[0], "rows": table[1]}
    best_row = next((r for r in state.history if r["epoch"] == es.best_epoch), {})
    summary = {
        "name": cfg["name"], "task": setup.task.kind, "model": cfg["model.name"], "dataset": cfg["data.name"],
        "loss": setup.task.loss_name, "optimizer": cfg["optim.name"], "device": str(setup.device),
        "params": sum(p.numel() for p in setup.model.parameters()),
        "epochs_run": state.epoch, "best_epoch": es.best_epoch, "patience": cfg["early_stop.patience"],
        "stopped_early": state.stop_reason is not None and not state.stop_reason.startswith("reached"),
        "stop_reason": state.stop_reason, "monitor": trainer.monitor, "mode": trainer.mode,
        "best": {k: v for k, v in best_row.items() if k.startswith("val/")},
        "test": test, "test_details": details, "test_checkpoint": "best.pt" if use_best else "last.pt",
        "restored_best": use_best, "seconds": round(seconds, 3), "processes": world,
    }
    for ob in trainer.observers:
        ob.summarize(summary)
    explain = getattr(setup.model, "explain", None)
    if explain is not None and not setup.data.per_batch and setup.data.info.in_shape[0] <= 32:  # small tables only
        summary.update(explain(setup.data.stats.get("mean"), setup.data.stats.get("std")))
    if cfg["logging.plots"]:
        summary["plots"] = make_plots(run_dir, setup, state.history, summary)
    for ob in trainer.observers:
        ob.finish(run_dir, summary)
    write_json(run_dir / "summary.json", summary)
    return run_dir, summary


def resume_config(saved: dict, sets, named) -> Config:
    """The checkpoint's config with the few changes a resume allows (epochs, patience, logging)."""
    old = resolve(base=saved["config"])
    new = resolve(base=saved["config"], sets=sets, named=named)
    for key in SCHEMA:
        if new[key] != old[key] and not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE):
            raise ConfigError(f"--resume cannot change {key} ({old[key]!r} in the checkpoint, {new[key]!r} now); "
                              f"only {', '.join(RESUMABLE)} may change")
    return new


def make_plots(run_dir: Path, setup: Setup, history: list[dict], summary: dict) -> list[str]:
    from . import plots

    folder = run_dir / "plots"
    plots.curves(folder / "curves.png", history, summary)
    written = ["curves.png"]
    written += setup.task.plots(folder, setup.model, setup.data, setup.device)
    if summary.get("health"):
        plots.health(folder / "health.png", summary["health"], summary)
        written.append("health.png")
    return [f"plots/{w}" for w in written]


def evaluate(path: str, split: str = "test", sets=(), named=None):
    """Metrics of a checkpoint on one split, with model/task/data rebuilt from its config."""
    saved, setup = load_for_inference(path, sets, named)
    if setup.task.num_outputs != saved.get("num_outputs", setup.task.num_outputs):
        raise ConfigError(f"the checkpoint's model has {saved['num_outputs']} outputs; this task needs {setup.task.num_outputs}")
    metrics = evaluate_loader(setup.model, setup.task, setup.loader(split), setup.device,
                              amp.autocast_args(setup.cfg["train.precision"], setup.device))
    result = {f"{split}/{k}": v for k, v in metrics.compute().items()}
    return result, setup.task.details(metrics), {"checkpoint": str(path), "split": split, "dataset": setup.cfg["data.name"],
                                                 "task": setup.task, "metrics": metrics}


def load_for_inference(path: str, sets=(), named=None, load_data: bool = True) -> tuple[dict, Setup]:
    """A checkpoint's model in eval mode with its task and data (only its description without load_data)."""
    saved = ckpt.load(path)
    cfg = resolve(base=saved["config"], sets=sets, named=named or {})
    setup = build(cfg, saved["data_stats"], saved["data_info"], load_data=load_data)
    try:
        setup.model.load_state_dict(saved["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise CheckpointError(f"the weights in {path!r} do not fit model {cfg['model.name']!r}: {first}") from None
    setup.model.eval()
    return saved, setup


def predict_images(path: str, inputs, top_k: int = 5, sets=(), out: Path | None = None):
    """The task's prediction for each image file (any size/mode): a classifier's top-k classes
    (inputs resized to the model's), a segmentation model's class mask (each image at its own
    size). With `out`, the task also writes its files there (annotated images, masks)."""
    from .datasets.imageio import image_files, load_image

    saved, setup = load_for_inference(path, sets, load_data=False)  # new files need no dataset
    info, task = setup.data.info, setup.task
    if len(info.in_shape) != 3 or not task.predicts_images:
        raise ConfigError(f"{path!r} is a {info.kind} model on {info.in_shape} inputs; "
                          f"dlsem predict takes image classifiers, segmentation models and detectors")
    files = image_files(inputs)
    size = task.predict_size(info)
    X = [load_image(f, info.in_shape[0], size) for f in files]  # (C, H, W) uint8 each; every file read first
    if size is not None:  # one size: batched
        X = torch.stack(X)
    batches = X.split(256) if size is not None else [x[None] for x in X]
    stems = _unique_stems(files)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    transform = setup.data.transform(setup.device)
    results: list[dict] = []
    with torch.inference_mode():
        for xb in batches:
            for o in task.predict(setup.model, transform(xb.to(setup.device))).cpu():
                i = len(results)
                r = {"image": str(files[i]), **task.describe(o, top_k)}
                if out is not None:
                    r.update(task.write_prediction(Path(out), i, stems[i], X[i], o, r, setup.data))
                results.append(r)
    return results, X, setup


def _unique_stems(files) -> list[str]:
    """File stems for output names; a repeated stem (a/x.png, b/x.jpg) gets -2, -3, ..."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        seen[f.stem] = seen.get(f.stem, 0) + 1
        out.append(f.stem if seen[f.stem] == 1 else f"{f.stem}-{seen[f.stem]}")
    return out
