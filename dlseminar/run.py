"""One training run, end to end: config -> registries -> Task -> Engine -> run directory.

`train` is what `dlsem train` calls. It rebuilds everything from a Config (assemble.build), so a
checkpoint (which stores its config) is enough to resume; evaluation and prediction from a
checkpoint are inference.py's, the run directory rundir.py's.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import io, memory, runlock
from .assemble import Setup, build
from .config import SCHEMA, Config, resolve
from .diagnosis import diagnose
from .engine import amp, distributed
from .engine import checkpoint as ckpt
from .engine.optim import LRSchedule, build_optimizer
from .engine.trainer import Trainer
from .engine.trainer import evaluate as evaluate_loader
from .errors import CheckpointError, ConfigError, UserError
from .inference import check_weights
from .rundir import claim_run_dir, write_config
from .summary import RunSummary

# Keys that `--resume` may change; anything else must match the checkpoint.
# precision, channels_last, compile and sync_batchnorm are speed settings (like the number of processes,
# which a resume may change too); train.accumulate changes the optimisation and must match.
RESUMABLE = ("train.epochs", "train.on_nan", "early_stop.patience", "early_stop.min_delta", "logging.", "checkpoint.", "device",
             "train.eval_batch_size", "train.precision", "train.channels_last", "train.compile", "train.sync_batchnorm",
             "data.in_memory", "data.num_workers")  # speed settings: a resume on a smaller machine may need to stream


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
                made = claim_run_dir(cfg, overwrite, held)
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
    train_loader.close()  # streamed files: their workers end here, before the test split's start
    val_loader.close()
    if not main:
        return run_dir, None  # rank 0 evaluates the test split and writes the summary and plots

    es = trainer.es
    use_best = cfg["early_stop.restore_best"] and es.best_state is not None
    if use_best:
        setup.model.load_state_dict(es.best_state)
    test, details = {}, None
    if "test" in setup.data.splits:
        loader = setup.loader("test")
        metrics = evaluate_loader(setup.model, setup.task, loader, setup.device, trainer.autocast)
        loader.close()
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
        if setup.data.info.true_weights:
            summary.true_weights = setup.data.info.true_weights
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
    from .viz.steps import steps

    # drawn in a staging folder, moved into plots/ once all are whole: a full disk or an interrupt
    # leaves plots/ as it was, with no half-written PNG and no temp
    with io.staged(run_dir / "plots", overwrite=True) as folder:
        curves(folder / "curves.png", history, summary)
        written = ["curves.png"]
        if (run_dir / "steps.csv").is_file() and steps(folder / "steps.png", run_dir / "steps.csv", summary.name or ""):
            written.append("steps.png")  # logging.steps: the loss of every optimizer step
        written += setup.task.plots(folder, setup.model, setup.data, setup.device)
        if summary.health:
            health(folder / "health.png", summary.health, summary)
            written.append("health.png")
    return [f"plots/{w}" for w in written]

