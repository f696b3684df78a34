"""One run, end to end: config -> registries -> Task -> Engine -> run directory.

`train` and `evaluate` are what the CLI calls; both rebuild everything from a Config,
so a checkpoint (which stores its config) is enough to evaluate or resume.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import io, memory, runlock
from .catalog import load_all
from .config import SCHEMA, Config, resolve
from .errors import CheckpointError, ConfigError, UserError
from .data import Data, TensorLoader
from .datasets import build_data
from .diagnosis import diagnose
from .engine import amp, distributed
from .engine import checkpoint as ckpt
from .engine.optim import LRSchedule, build_optimizer
from .engine.trainer import Trainer
from .engine.trainer import evaluate as evaluate_loader
from .models import build_model
from .summary import RunSummary
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
    load_all()
    set_determinism(cfg["train.deterministic"])
    device = distributed.local_device(pick_device(cfg["device"]))  # under torchrun: this process's GPU
    seed_all(cfg["seed"])
    if load_data:
        memory.check_dataset(cfg)  # a generated dataset too big for RAM: refused before it is made
        # a checkpoint's description of its data is checked as soon as the data's is known, before its
        # fitted stats are applied: a mismatch is said as "4 features" vs "64 features", not as a shape
        expect = None if info is None else partial(_check_compatible, info)
        data = build_data(cfg, stats, expect)
        from .data.augment import check as check_augment

        check_augment(cfg["data.augment"], data)
    else:
        data = _described_data(info, stats)
    task = build_task(cfg, data.info)
    torch.manual_seed(cfg["seed"])  # weight init does not depend on how much the data drew
    memory.check_model(cfg, data.info.in_shape, task.num_outputs, task.output_kind, device)  # before one weight exists
    model = build_model(cfg, data.info.in_shape, task.num_outputs, task.output_kind).to(device)
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


def _check_compatible(saved: dict, now) -> None:
    """The data `now` has the kind, input shape and classes of the checkpoint's (`saved`: its data_info)."""
    why = _data_mismatch(saved, now)
    if why:
        raise ConfigError(why)


def _data_mismatch(saved: dict, now) -> str | None:
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


def new_run_dir(cfg: Config, overwrite: bool) -> Path:
    """--out as given, else runs/<name>[-N]. A non-empty --out needs --overwrite, and then may hold only a
    previous run's files (clear_run removes them once the run starts) and none of the run's inputs
    (its config file, data.path): io.check_run_dir."""
    if cfg["out"]:
        d = io.check_run_dir(Path(cfg["out"]), overwrite, io.config_inputs(cfg))
    else:
        # `runs` a file: say which, as for --out
        d = io.check_run_dir(io.numbered_dir(Path("runs") / cfg["name"]), False, io.config_inputs(cfg))
    try:
        (d / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run directory {str(d)!r}: {e.strerror or e}") from None
    return d


def _claim_run_dir(cfg: Config, overwrite: bool, held: contextlib.ExitStack) -> Path:
    """new_run_dir's choice, locked (runlock) before anything in it is cleared or written; the lock is
    released when `held` closes.

    --out that another process writes: refused, naming that process (also without --overwrite, where
    new_run_dir would only say that the folder is not empty). runs/<name>-N: two runs starting at the
    same moment may choose the same N; the one that does not get the lock chooses again."""
    out = Path(cfg["out"]) if cfg["out"] else None
    for _ in range(100):
        try:
            d = new_run_dir(cfg, overwrite)
        except ConfigError:
            who = out is not None and runlock.holder(out)
            if who:
                raise runlock.InUse(f"run directory {str(out)!r} is in use by {who}; wait for it or choose another --out") from None
            raise
        try:
            runlock.acquire(d)
        except runlock.InUse:
            if out is not None:
                raise
            continue  # new_run_dir now sees the other run's files there and chooses the next N
        if out is not None or _fresh(d):
            held.callback(runlock.release, d)
            return d
        runlock.release(d)  # a run that chose it too has finished there meanwhile: choose again
    raise UserError(f"could not claim a run directory for runs/{cfg['name']}-N: other runs keep taking them; use --out")


def _fresh(d: Path) -> bool:
    """Whether `d` holds nothing but an empty plots/ (what new_run_dir makes) and the lock."""
    try:
        return (all(p.name in (runlock.LOCK_NAME, "plots") for p in d.iterdir())
                and not any((d / "plots").iterdir()))
    except OSError:
        return False


def write_config(path: Path, cfg: Config) -> None:
    import yaml

    # data paths absolute: the run can be evaluated and resumed from any working directory
    io.write_text(path, yaml.safe_dump(cfg.absolute().to_dict(), sort_keys=False, default_flow_style=None))


def train(cfg: Config, resume: str | None = None, overwrite: bool = False, sets=(),
          named=None) -> tuple[Path, RunSummary | None]:
    """Train `cfg` (or continue the run of `resume`); returns the run directory and summary.

    The run directory is locked (runlock) before anything in it is cleared or written, until this returns."""
    with contextlib.ExitStack() as held:  # the lock is released however the run ends
        return _start(cfg, resume, overwrite, sets, named, held)


def _start(cfg: Config, resume, overwrite, sets, named, held: contextlib.ExitStack):
    saved = None
    if resume:
        saved = ckpt.load(resume)
        if "optimizer" not in saved:
            raise CheckpointError(f"{resume!r} holds weights only (a best.pt); resume from the run's last.pt")
        cfg = resume_config(saved, sets, named or {})
        run_dir = Path(resume).resolve().parent
        if distributed.is_main():  # under torchrun rank 0 writes the run directory, and locks it
            runlock.acquire(Path(resume).parent, hint="wait for it to end, then resume")
            held.callback(runlock.release, run_dir)
        ckpt.remove_stale_temps(run_dir)
    setup = build(cfg, saved and saved["data_stats"], saved and saved["data_info"])
    if saved:
        check_weights(setup.model, saved, resume, cfg)  # an edited last.pt: one line, not torch's traceback
    dist = distributed.init(setup.device)  # None unless torchrun started several processes
    try:
        return _train(cfg, setup, dist, saved, run_dir if resume else None, overwrite, held)
    finally:
        if dist is not None:
            distributed.shutdown()


def _train(cfg: Config, setup: Setup, dist, saved, run_dir, overwrite, held: contextlib.ExitStack):
    main = dist is None or dist.main
    world = 1 if dist is None else dist.world
    amp.check(cfg["train.precision"], setup.device, quiet=not main)
    setup.task.monitor_mode(cfg)  # an early_stop.monitor the task does not record: refused before any run dir exists
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in setup.model.modules())
    if has_bn and cfg["train.batch_size"] != "full" and cfg["train.batch_size"] < 2 * world and not (world > 1 and cfg["train.sync_batchnorm"]):
        per = "" if world == 1 else f" per process ({world} processes share train.batch_size)"
        raise ConfigError(f"batch norm needs batches of 2 or more samples{per}; use a larger train.batch_size or turn batch norm off")
    memory.check_step(cfg, setup, world)  # a step that cannot fit: refused before the data moves to the device
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
                made = _claim_run_dir(cfg, overwrite, held)
                ckpt.remove_stale_temps(made)  # --overwrite of a run killed while writing
                if overwrite:  # no old best.pt/last.pt/metrics.csv left mixed with this run's
                    io.clear_run(made)
            except UserError as e:
                made = e
        if dist is not None:  # rank 0 chose the directory (runs/<name>-N); the others learn it
            made = distributed.broadcast_object(made if main else None)
        if isinstance(made, UserError):
            raise made
        run_dir = made
    if main and saved is None:  # a resume writes it with its first last.pt (_continued): never ahead of it
        write_config(run_dir / "config.yaml", cfg)
    meta = {"config": cfg.absolute().to_dict(), "data_info": asdict(setup.data.info), "data_stats": setup.data.stats,
            "num_outputs": setup.task.num_outputs}
    from .catalog import build_observers

    observers = build_observers(setup, opt, main, run_dir)  # health, boundary frames, TensorBoard: as configured
    trainer = Trainer(setup.model, setup.task, opt, sched, setup.device, cfg, run_dir, meta, dist=dist,
                      observers=observers)
    if main and saved is not None:
        def continued():
            """The resume's first last.pt holds its config (more epochs, ...): now config.yaml may say it,
            and a summary.json of the run as it ended before no longer describes the run."""
            trainer.after_save.remove(continued)
            write_config(run_dir / "config.yaml", cfg)
            (run_dir / "summary.json").unlink(missing_ok=True)

        trainer.after_save.append(continued)
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
    summary = RunSummary(
        name=cfg["name"], task=setup.task.kind, model=cfg["model.name"], dataset=cfg["data.name"],
        loss=setup.task.loss_name, optimizer=cfg["optim.name"], device=str(setup.device),
        params=sum(p.numel() for p in setup.model.parameters()),
        epochs_run=state.epoch, best_epoch=es.best_epoch, patience=cfg["early_stop.patience"],
        stopped_early=state.stop_reason is not None and not state.stop_reason.startswith("reached"),
        stop_reason=state.stop_reason, monitor=trainer.monitor, mode=trainer.mode,
        best={k: v for k, v in best_row.items() if k.startswith("val/")},
        test=test, test_details=details, test_checkpoint="best.pt" if use_best else "last.pt",
        restored_best=use_best, seconds=round(seconds, 3), processes=world,
    )
    for ob in trainer.observers:
        ob.summarize(summary)
    explain = getattr(setup.model, "explain", None)
    if explain is not None and not setup.data.per_batch and setup.data.info.in_shape[0] <= 32:  # small tables only
        st = setup.data.stats
        summary.weights = explain(st.get("mean"), st.get("std"), st.get("target_mean"), st.get("target_std"))["weights"]
    if cfg["logging.plots"]:
        summary.plots = make_plots(run_dir, setup, state.history, summary)
    for ob in trainer.observers:
        ob.finish(run_dir, summary)
    verdict = diagnose(state.history, state.stop_reason, setup.task.reference_loss())  # read from the curves
    summary.diagnosis = {"kind": verdict.kind, "line": verdict.line, "epoch": verdict.epoch}
    io.write_text(run_dir / "summary.json", summary.to_json())
    return run_dir, summary


def resume_config(saved: dict, sets, named) -> Config:
    """The checkpoint's config with the few changes a resume allows (epochs, patience, logging)."""
    old = resolve(base=saved["config"])
    new = resolve(base=saved["config"], sets=sets, named=named)
    for key in SCHEMA:
        if new[key] != old[key] and not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE):
            raise ConfigError(f"--resume cannot change {key} ({old[key]!r} in the checkpoint, {new[key]!r} now); "
                              f"only {', '.join(RESUMABLE)} may change")
    done, epochs = int(saved.get("epoch", 0)), new["train.epochs"]
    if epochs < done:  # fit() would run no epoch and the summary would claim train.epochs it exceeded
        raise ConfigError(f"this run already ran {done} epochs; train.epochs {epochs} is fewer: pass --epochs {done + 1} "
                          f"or more to train on (--epochs {done} only writes its test results and plots again)")
    if epochs == done:
        from .console import note

        note(f"this run already ran all {done} epochs of train.epochs: nothing to train; its test results, plots and "
             f"summary.json are written again (pass --epochs {done + 1} or more to train on)")
    return new


def make_plots(run_dir: Path, setup: Setup, history: list[dict], summary: RunSummary) -> list[str]:
    from .viz.curves import curves
    from .viz.health import health

    # drawn in a staging folder, moved into plots/ once all are whole: a full disk or an interrupt
    # leaves plots/ as it was, with no half-written PNG and no temp
    with io.staged(run_dir / "plots", overwrite=True) as folder:
        curves(folder / "curves.png", history, summary)
        written = ["curves.png"]
        written += setup.task.plots(folder, setup.model, setup.data, setup.device)
        if summary.health:
            health(folder / "health.png", summary.health, summary)
            written.append("health.png")
    return [f"plots/{w}" for w in written]


def evaluate(path: str, split: str = "test", sets=(), named=None):
    """Metrics of a checkpoint on one split, with model/task/data rebuilt from its config."""
    saved, setup = load_for_inference(path, sets, named)
    metrics = evaluate_loader(setup.model, setup.task, setup.loader(split), setup.device,
                              amp.autocast_args(setup.cfg["train.precision"], setup.device))
    result = {f"{split}/{k}": v for k, v in metrics.compute().items()}
    return result, setup.task.details(metrics), {"checkpoint": str(path), "split": split, "dataset": setup.cfg["data.name"],
                                                 "task": setup.task, "metrics": metrics}


def load_for_inference(path: str, sets=(), named=None, load_data: bool = True) -> tuple[dict, Setup]:
    """A checkpoint's model in eval mode with its task and data (only its description without load_data)."""
    saved = ckpt.load(path)  # a whole dlseminar checkpoint, or one line saying what the file is
    cfg = resolve(base=saved["config"], sets=sets, named=named or {})
    setup = build(cfg, saved["data_stats"], saved["data_info"], load_data=load_data)
    outputs = saved.get("num_outputs", setup.task.num_outputs)
    if outputs != setup.task.num_outputs:
        changed = _keys_changed(saved["config"], cfg, ("task", "loss.name", "model."))
        hint = f"; {changed} differs from the checkpoint's config: leave it out" if changed else ""
        raise ConfigError(f"the model in {path!r} has {outputs} outputs but dataset {setup.data.info.name!r} "
                          f"({setup.task.kind}) needs {setup.task.num_outputs}{hint}")
    check_weights(setup.model, saved, path, cfg)
    try:
        setup.model.load_state_dict(saved["model"])
    except (RuntimeError, KeyError, TypeError) as e:  # not a shape or a name: say torch's first line
        first = str(e).strip().splitlines()[0][:160]
        raise CheckpointError(f"the weights in {path!r} do not fit model {cfg['model.name']!r}: {first}") from None
    setup.model.eval()
    return saved, setup


def check_weights(model: torch.nn.Module, saved: dict, path: str, cfg: Config) -> None:
    """The checkpoint's weights have the model's layer names and shapes, else a CheckpointError naming the first
    layers that differ (and the --set model.* key that made the model differ, when one did)."""
    why = _weights_mismatch(model, saved["model"])
    if why:
        changed = _keys_changed(saved["config"], cfg, ("model.",))
        hint = f"; {changed} differs from the checkpoint's config: leave it out" if changed else ""
        raise CheckpointError(f"the weights in {path!r} do not fit model {cfg['model.name']!r}: {why}{hint}")


def _weights_mismatch(model: torch.nn.Module, weights: dict) -> str | None:
    """Which layers of the checkpoint's weights and the model differ (first few, with shapes), or None."""
    have = model.state_dict()
    shape = lambda t: "x".join(map(str, t.shape)) or "a scalar"  # noqa: E731
    differ = [k for k, t in have.items() if k in weights and tuple(weights[k].shape) != tuple(t.shape)]
    missing = [k for k in have if k not in weights]
    unexpected = [k for k in weights if k not in have]
    if not (differ or missing or unexpected):
        return None

    def few(keys):
        return ", ".join(keys[:2]) + (f" (+{len(keys) - 2} more)" if len(keys) > 2 else "")

    parts = []
    if differ:
        k = differ[0]
        n = len(differ) - 1
        more = f" (and {n} more layer{'s differ' if n > 1 else ' differs'})" if n else ""
        parts.append(f"layer {k!r} is {shape(weights[k])} in the checkpoint but {shape(have[k])} in the model{more}")
    if missing:
        parts.append(f"missing from the checkpoint: {few(missing)}")
    if unexpected:
        parts.append(f"not in the model: {few(unexpected)}")
    return "; ".join(parts)


def _keys_changed(saved_config: dict, cfg: Config, prefixes: tuple[str, ...]) -> str:
    """The keys under `prefixes` that --set changed from the checkpoint's config (the usual cause of a mismatch)."""
    try:
        old = resolve(base=saved_config)
    except UserError:
        return ""
    keys = [k for k in SCHEMA if k.startswith(prefixes) and old[k] != cfg[k]]
    return ", ".join(keys[:3])


def predict_images(path: str, inputs, top_k: int = 5, sets=(), out: Path | None = None, overwrite: bool = False,
                   features: bool = False):
    """The task's prediction for each image file (any size/mode): a classifier's top-k classes
    (inputs resized to the model's), a segmentation model's class mask (each image at its own
    size). With `out`, the task also writes its files there (annotated images, masks) and, with
    `features`, feature maps of the first image (their paths in the first result's "features").

    The files are written all or none (io.staged): an existing file of the same name is refused
    unless `overwrite`, and an input image or the checkpoint never, even when `out` is their folder."""
    import contextlib

    from .datasets.imageio import image_files, load_image

    saved, setup = load_for_inference(path, sets, load_data=False)  # new files need no dataset
    info, task = setup.data.info, setup.task
    if len(info.in_shape) != 3 or not task.predicts_images:
        raise ConfigError(f"{path!r} is a {info.kind} model on {info.in_shape} inputs; "
                          f"dlsem predict takes image classifiers, segmentation models and detectors")
    files = image_files(inputs)
    read = [(path, "the checkpoint being read"), *((f, "an input image") for f in files)]
    if out is not None:  # a file, a path under one, a read-only folder: said before any image is decoded
        io.check_dir(out, own=True, allow_run=True, inputs=read)
    size = task.predict_size(info)
    X = [load_image(f, info.in_shape[0], size) for f in files]  # (C, H, W) uint8 each; every file read first
    if size is not None:  # one size: batched
        X = torch.stack(X)
    batches = X.split(256) if size is not None else [x[None] for x in X]
    stems = _unique_stems(files)
    transform = setup.data.transform(setup.device)
    results: list[dict] = []
    staging = io.staged(out, overwrite=overwrite, inputs=read) if out is not None else contextlib.nullcontext()
    with staging as stage:
        with torch.inference_mode():
            for xb in batches:
                for o in task.predict(setup.model, transform(xb.to(setup.device))).cpu():
                    i = len(results)
                    r = {"image": str(files[i]), **task.describe(o, top_k)}
                    if stage is not None:
                        r.update(task.write_prediction(stage, i, stems[i], X[i], o, r, setup.data))
                    results.append(r)
        if stage is not None and features and results:
            from .viz.features import feature_maps

            x0 = transform(X[0][None].to(setup.device))
            results[0]["features"] = [str(stage / f) for f in feature_maps(stage, setup.model, x0)]
    if out is not None:  # the files now lie in `out`: say so in the results
        for r in results:
            for k, v in r.items():
                if isinstance(v, str) and v.startswith(str(stage)):
                    r[k] = str(Path(out) / Path(v).relative_to(stage))
            if "features" in r:
                r["features"] = [str(Path(out) / Path(v).relative_to(stage)) for v in r["features"]]
    return results, X, setup


def _unique_stems(files) -> list[str]:
    """File stems for output names; a repeated stem (a/x.png, b/x.jpg) gets -2, -3, ..."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        seen[f.stem] = seen.get(f.stem, 0) + 1
        out.append(f.stem if seen[f.stem] == 1 else f"{f.stem}-{seen[f.stem]}")
    return out
