"""The `dlsem` command line. Heavy imports (torch, the registries) happen inside commands,
so `dlsem --help` stays fast."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .cli_help import SET_HELP, Command, Group, show_version
from .summary import print_summary

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=Group,
                  help="dlseminar: train and evaluate the deep-learning seminar's models from the terminal.")
config_app = typer.Typer(add_completion=False, no_args_is_help=True, cls=Group, help="Inspect the configuration.")
app.add_typer(config_app, name="config")


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=show_version,
                                       help="Print the version (dlsem X.Y.Z) and exit.")):
    """dlseminar: train and evaluate the deep-learning seminar's models from the terminal."""

# The names come from the registries, which import torch: `dlsem config show` lists them, --help points there.
NAMES_HELP = "`dlsem config show` lists the names"


@app.command(cls=Command)
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the embedded default config)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (see `dlsem models`)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name (see `dlsem datasets`)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum number of epochs."),
    batch_size: Optional[str] = typer.Option(None, "--batch-size", help="1 (SGD), N (mini-batch) or full (batch GD)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help=f"Optimizer (optim.name; {NAMES_HELP})."),
    loss: Optional[str] = typer.Option(None, "--loss", help=f"Loss (loss.name; {NAMES_HELP})."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout probability."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Optimizer weight decay."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early-stopping patience in epochs (0: off)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto|cpu|cuda|mps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--no-pretrained",
                                              help="Start from torchvision's ImageNet weights (local cache only)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Start from the weights of a dlseminar "
                                            "checkpoint (RUN/best.pt): layers whose names and shapes match are "
                                            "loaded, a head for other classes is new (model.init_from)."),
    out: Optional[str] = typer.Option(None, "--out", help="Run directory (default runs/<name>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run from its last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in an existing --out directory (its "
                                   "files are removed first; a folder holding other files is refused)."),
    devices: Optional[int] = typer.Option(None, "--devices", min=1,
                                          help="Train in N processes on this machine (torchrun: one per GPU, or N CPU processes)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Train a model; writes a run directory with config, metrics, checkpoints and plots."""
    from .config import resolve
    from .errors import ConfigError

    named = dict(model=model, data=data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                 loss=loss, dropout=dropout, weight_decay=weight_decay, patience=patience, device=device,
                 seed=seed, out=out, pretrained=pretrained, init_from=init_from)
    if resume is not None and config is not None:
        raise ConfigError("--resume continues with the checkpoint's own config; do not pass a CONFIG file too")
    cfg = None if resume is not None else resolve(config, set_, named)
    if devices is not None and devices > 1:
        from .engine import distributed

        if distributed.world_size() > 1:
            raise ConfigError("--devices starts torchrun itself; under torchrun, leave it out")
        if resume is not None and not resume.is_file():
            raise ConfigError(f"checkpoint {str(resume)!r} not found")
        raise typer.Exit(distributed.launch(distributed.strip_devices(sys.argv[1:]), devices))
    from . import run

    run_dir, summary = run.train(cfg, resume=str(resume) if resume else None, overwrite=overwrite,
                                 sets=set_, named=named)
    if summary is not None:  # None on the ranks other than 0 of a multi-process run
        print_summary(run_dir, summary)


@app.command("eval", cls=Command)
def eval_(
    ckpt: Path = typer.Argument(..., help="A checkpoint: RUN/best.pt or RUN/last.pt."),
    data: Optional[str] = typer.Option(None, "--data", help="Evaluate on another dataset (same features/classes)."),
    split: str = typer.Option("test", "--split", help="train|val|test."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object of metrics on stdout."),
):
    """Evaluate a checkpoint; model, task and data are rebuilt from the config stored in it."""
    from .errors import ConfigError

    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test (got {split!r})")
    from . import inference

    metrics, details, info = inference.evaluate(str(ckpt), split, set_, {"data": data})
    if json_:
        print(json.dumps(metrics))
        return
    from rich.table import Table

    from .streams import console

    c = console(highlight=False)
    c.print(f"{info['checkpoint']} on {info['dataset']} ({split}): "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    tables = [details] if details else []
    confusion = getattr(info.get("task"), "confusion_table", None)
    if confusion is not None and len(info["task"].info.class_names) <= 20:
        tables.append(confusion(info["metrics"]))
    for header, rows in tables:
        t = Table(*header)
        for r in rows:
            t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r])
        c.print(t)


@app.command(cls=Command)
def predict(
    ckpt: Path = typer.Argument(..., help="A checkpoint of an image classifier, a segmentation model or a detector."),
    images: List[Path] = typer.Argument(..., help="Image files or folders (any size and mode)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="How many classes to show per image (classifiers)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here an annotated image per input (classifiers) "
                                       "or <stem>_mask.png and <stem>_overlay.png (segmentation)."),
    features: bool = typer.Option(False, "--features", help="With --out: feature maps of a few conv layers for the first image."),
    cam: bool = typer.Option(False, "--cam", help="With --out: a Grad-CAM heatmap of each image for its predicted class "
                             "(<n>_<stem>_cam.png; classifiers)."),
    hierarchy: bool = typer.Option(False, "--hierarchy", help="With --out: features_hierarchy.png, the training patches "
                                   "that most excite filters of an early, a middle and a late conv layer."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files of the same name in --out "
                                   "(never an input image or the checkpoint)."),
    score_threshold: Optional[float] = typer.Option(None, "--score-threshold", min=0.0, max=1.0,
                                                    help="Detectors: keep boxes scoring above this "
                                                         "(default: the checkpoint's model.score_thresh)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Class probabilities (the lesson's softmax table) for image files, class masks from a segmentation
    model, or boxes from a detector (<stem>_boxes.png with --out)."""
    from . import inference

    if score_threshold is not None:
        set_ = [*set_, f"model.score_thresh={score_threshold}"]
    if hierarchy and out is None:
        from .errors import ConfigError

        raise ConfigError("--hierarchy writes features_hierarchy.png: give --out DIR")

    results, X, setup = inference.predict_images(str(ckpt), [str(i) for i in images], top_k, set_, out=out,
                                                 overwrite=overwrite, features=features, cam=cam)
    for f in results[0].get("features", []) if results else []:
        print(f"feature maps: {f}", file=sys.stderr)
    for r in results if cam else []:
        print(f"Grad-CAM: {r['cam']}", file=sys.stderr)
    if hierarchy:
        print(f"feature hierarchy: {inference.feature_hierarchy(str(ckpt), out, set_, overwrite)}", file=sys.stderr)
    if json_:
        print(json.dumps(results))
        return
    from rich.table import Table

    from .streams import console

    header, rows = setup.task.prediction_table(results)
    t = Table(*header)
    for r in rows:
        t.add_row(*r)
    console().print(t)


def _listing(reg, extra=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .streams import console

    t = Table("name", "description", *(["kind"] if extra else []))
    for e in reg.entries():
        t.add_row(e.name, escape(e.doc), *([str(e.meta.get(extra, ""))] if extra else []))
    console().print(t)


models_app = typer.Typer(add_completion=False, invoke_without_command=True, cls=Group,
                         help="List the registered models, or `models show NAME` for a layer table.")
app.add_typer(models_app, name="models")
INPUT_HELP = "Input shape CxHxW (e.g. 3x32x32, 1x8x8) or a feature count (e.g. 64)."


def _shape(text: str) -> tuple[int, ...]:
    from .errors import ConfigError

    try:
        shape = tuple(int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ConfigError(f"--input must look like 3x32x32 or 64 (got {text!r})")
    return shape


def _build(name: str, shape, classes: int, sets=()):
    from .config import resolve
    from .catalog import load_all
    from .models import build_model
    from .registry import MODELS

    load_all()
    cfg = resolve(sets=[f"model.name={name}", *sets])
    kind = MODELS.get(name).meta.get("outputs", ("scores",))[0]  # a detector is built to give detections
    return build_model(cfg, shape, classes, kind)


@models_app.callback()
def models(
    ctx: typer.Context,
    input_: str = typer.Option("3x32x32", "--input", help=INPUT_HELP),
    classes: int = typer.Option(10, "--classes", min=1, help="Number of outputs."),
):
    """List the registered models with their parameter count for --input."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.markup import escape
    from rich.table import Table

    from .catalog import load_all
    from .registry import MODELS
    from .streams import console

    load_all()
    shape = _shape(input_)
    t = Table("name", f"params @ {input_}, {classes} classes", "description")
    import torch

    for e in MODELS.entries():
        try:
            with torch.device("meta"):  # shapes only: counting 140 M VGG weights needs no memory or init time
                n = f"{sum(p.numel() for p in _build(e.name, shape, classes).parameters()):,}"
        except Exception as err:  # e.g. an input too small, or 1-D input for a conv net
            n = f"n/a ({err})"[:40]
        t.add_row(e.name, escape(n), escape(e.doc))
    console().print(t)


def _layers(name: str, shape, classes: int, sets):
    """The model and its layer table, traced on the meta device (shapes only: a 3x20000x20000 --input or
    a model of billions of weights costs no memory); a model whose forward needs real tensors (a
    detector's) is built for real, once its input is known to fit in RAM."""
    import math

    import torch

    from . import memory
    from .errors import UserError
    from .models.summary import structure

    try:
        with torch.device("meta"):
            model = _build(name, shape, classes, sets)
            return model, structure(model, shape)
    except UserError:
        raise
    except Exception:  # e.g. torch.nonzero has no meta kernel
        pass
    memory.check_bytes(4 * math.prod(shape), f"an input of {'x'.join(map(str, shape))}", "use a smaller --input")
    model = _build(name, shape, classes, sets)
    return model, structure(model, shape)


@models_app.command("show", cls=Command)
def models_show(
    name: str = typer.Argument(..., help="Model name."),
    input_: str = typer.Option("3x32x32", "--input", help=INPUT_HELP),
    classes: int = typer.Option(10, "--classes", min=1, help="Number of outputs."),
    set_: List[str] = typer.Option([], "--set", help="model.* keys, e.g. --set model.widths=[8,16]"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw a block diagram of the model to this .png file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --plot file."),
):
    """Layer table of one model: layer, output shape, parameters, each conv's fully connected equivalent,
    and the structure (residual additions, skip concatenations, auxiliary heads)."""
    from rich.markup import escape
    from rich.table import Table

    from .catalog import load_all
    from .registry import MODELS
    from .streams import console

    load_all()
    shape = _shape(input_)
    model, rows = _layers(name, shape, classes, set_)
    t = Table("layer", "type", "output shape", "FC equivalent", "params", "structure", title=f"{name} @ {input_}")
    for r in rows:
        t.add_row(r.layer, r.kind, "x".join(map(str, r.shape)), "" if r.dense is None else f"{r.dense:,}",
                  f"{r.params:,}", escape(r.note))
    total = sum(p.numel() for p in model.parameters())
    c = console()
    c.print(t)
    c.print(f"total parameters: {total:,}  —  {MODELS.get(name).doc}")
    if any(r.dense is not None for r in rows):
        c.print("FC equivalent: the parameters of a fully connected layer from the conv's input size to its output size")
    if plot is not None:
        from .viz.diagram import plot as draw

        c.print(f"block diagram: {draw(plot, rows, f'{name} @ {input_}: {total:,} parameters', overwrite)}")
    for line in getattr(model, "describe", lambda: [])():  # models with stages to explain (detectors)
        c.print(line, highlight=False)


@app.command(cls=Command)
def datasets():
    """List the registered datasets."""
    from .catalog import load_all
    from .registry import DATASETS

    load_all()
    _listing(DATASETS, "kind")


@config_app.command("show", cls=Command)
def config_show(
    config: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the embedded defaults)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Print the resolved config: every key, its value and its meaning (valid YAML)."""
    import yaml

    from .catalog import choices
    from .config import SCHEMA, docs, resolve

    cfg = resolve(config, set_)
    meaning = docs(choices())  # with the registered names each *.name key takes
    section = None
    for key in SCHEMA:
        sec, _, sub = key.rpartition(".")
        if sec and sec != section:
            print(f"{sec}:")
            section = sec
        value = yaml.safe_dump(cfg[key], default_flow_style=True).strip().removesuffix("...").strip()
        left = f"{'  ' if sec else ''}{sub}: {value}"
        print(f"{left:<34} # {meaning[key]}")


@app.command(cls=Command)
def sweep(
    config: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the embedded default config)."),
    grid: List[str] = typer.Option([], "--grid", help="key=value1,value2,... (repeatable: the Cartesian product "
                                   "of all --grid options), e.g. --grid optim.name=sgd,momentum,rmsprop,adam"),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Members trained at a time: 1 in this process, N in N processes."),
    out: Optional[str] = typer.Option(None, "--out", help="Sweep directory (default runs/<name>-sweep; "
                                      "the same command again continues it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow a non-empty --out that holds no sweep "
                                   "(never a run directory or a folder holding the recipe or data)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP + " Applies to every member."),
):
    """Train every combination of the --grid values, each in its own run directory, then rank them
    (table, sweep.csv, plots/compare.png). Started again, it skips finished members and resumes the others."""
    from . import sweep as sweeps
    from .errors import Interrupted

    try:
        root, rows, keys = sweeps.sweep(config, grid, set_, jobs, out, overwrite=overwrite)
    except Interrupted as e:  # sweeps.sweep said how to continue
        raise typer.Exit(e.code)
    _print_ranked(rows, keys, root / "sweep.csv", f"sweep {root}", names=False)
    if any(r["status"] in ("failed", "interrupted", "unfinished") for r in rows):
        raise typer.Exit(1)


@app.command(cls=Command)
def compare(
    runs: List[Path] = typer.Argument(..., help="Run directories, or a sweep directory (its members)."),
    out: Optional[str] = typer.Option(None, "--out", help="Where compare.csv and plots/compare.png go "
                                      "(default: the sweep directory when given one, else runs/compare[-N])."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow a non-empty --out that holds no earlier "
                                   "comparison (never a run directory)."),
):
    """Rank existing runs by their monitored metric: a table, a CSV and overlaid learning curves."""
    from .compare import compare as compare_runs

    folder, rows, keys, name = compare_runs(runs, out, overwrite)
    one_sweep = len(runs) == 1 and (runs[0] / "sweep.json").exists()  # its settings columns name the members
    _print_ranked(rows, keys, folder / name, "", names=not one_sweep)


@app.command(cls=Command)
def zoo(
    data: str = typer.Option("shapes", "--data", help="An image classification dataset (see `dlsem datasets`)."),
    epochs: int = typer.Option(5, "--epochs", min=1, help="Epochs for every model (no early stopping)."),
    models: Optional[str] = typer.Option(None, "--models", help="Comma-separated subset, e.g. cnn,lenet5,resnet18 "
                                         "(default: every image classifier of `dlsem models`)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Models trained at a time: 1 in this process, N in N processes."),
    out: Optional[str] = typer.Option(None, "--out", help="Zoo directory (default runs/zoo-<data>; "
                                      "the same command again continues it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow a non-empty --out that holds no zoo "
                                   "(never a run directory)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP + " Applies to every model, e.g. data.n_samples=200."),
):
    """Train every image classifier of the zoo on the same data with the same settings (Adam, lr 3e-4, batch 32)
    and rank them: parameters, forward FLOPs per image, seconds per epoch, val and test accuracy (zoo.csv,
    plots/zoo.png). A sweep over model.name: started again, it skips finished models and resumes the others."""
    from . import zoo as zoos
    from .errors import Interrupted
    from .streams import console

    try:
        root, rows, described = zoos.zoo(data, epochs, models, set_, jobs, out, overwrite=overwrite)
    except Interrupted as e:  # the sweep said how to continue
        raise typer.Exit(e.code)
    c = console(highlight=False)  # in a log: rows never wrap
    shape = "x".join(map(str, described["in_shape"]))
    c.print(zoos.table(rows, described, f"zoo {root}: {data} {shape}, {described['num_classes']} classes, "
                                        f"{epochs} epoch{'s' if epochs != 1 else ''}"))
    c.print(zoos.footnote(described))
    c.print(f"{root / 'zoo.csv'}  {root / 'plots' / 'zoo.png'}")
    if any(r["status"] in ("failed", "interrupted", "unfinished") for r in rows):
        raise typer.Exit(1)


def _print_ranked(rows, keys, csv_path: Path, title: str, names: bool = True) -> None:
    from .ranked import table
    from .streams import console

    c = console(highlight=False)  # in a log: rows never wrap
    c.print(table(rows, keys, title, names))
    c.print(f"{csv_path}  {csv_path.parent / 'plots' / 'compare.png'}")


@app.command(cls=Command)
def report(
    path: Path = typer.Argument(..., metavar="DIR", help="A run directory, or a sweep or compare directory."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="The HTML file to write (default: DIR/report.html)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file (never a run's own files)."),
):
    """One self-contained HTML page (opens offline: images and styles inline) of a run, or of a sweep or
    compare directory with a section per member run."""
    from .report import write_report

    print(write_report(path, out, overwrite))


@app.command("lr-find", cls=Command)
def lr_find_(
    config: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the embedded default config)."),
    steps: int = typer.Option(200, "--steps", help="Optimizer steps of the test (at least 10)."),
    start: float = typer.Option(1e-7, "--start", help="First learning rate."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate."),
    write: Optional[Path] = typer.Option(None, "--write", help="Write a copy of the recipe with optim.lr set to the suggestion."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default runs/<name>-lr-find)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --write file, write into a non-empty "
                                   "--out (never the recipe being tested or a run's files)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Learning-rate range test: the loss while the lr grows exponentially; lr_find.png and a suggested lr
    (a tenth of the lr at the smoothed loss's minimum)."""
    from . import lr_find
    from .config import resolve
    from .errors import ConfigError

    cfg = resolve(config, set_)
    if write is not None:  # both checked before the test runs: a refusal costs nothing
        lr_find.check_write(write, cfg, overwrite)
    folder = lr_find.output_dir(cfg, out, overwrite)
    result = lr_find.find(cfg, start, end, steps)
    info = lr_find.write_outputs(folder, result, cfg)
    lr = info["suggested_lr"]
    print(f"{info['steps_run']} steps, {info['stop_reason']}")
    if lr is None:
        raise ConfigError(f"the loss never fell below its first value between lr {start:g} and {end:g}: no suggestion "
                          f"(try a smaller --start or a larger --end); see {folder / 'lr_find.png'}")
    steep = f"{info['steepest_lr']:.3g}" if info["steepest_lr"] else "-"
    print(f"smoothed loss lowest at lr {info['min_loss_lr']:.3g}; steepest descent at lr {steep}")
    print(f"suggested lr: {lr:.3g} ({info['rule']})")
    print(f"plot: {folder / 'lr_find.png'}")
    if write is not None:
        lr_find.write_config(write, cfg, lr, overwrite)
        print(f"wrote {write} (optim.lr {float(f'{lr:.3g}'):g}); train it with: dlsem train {write}")


from .cli_tools import explain, export_, surface  # noqa: E402  (registered here, written there)

app.command(cls=Command)(explain)
app.command(cls=Command)(surface)
app.command("export", cls=Command)(export_)


def main() -> None:
    """Entry point: user mistakes become one `error:` line and exit 2, never a traceback."""
    import shlex
    import signal

    from . import collector, runlock, streams

    collector.hold()  # until the run's model is built (assemble.build): see collector.py
    args = sys.argv[1:] or ["--help"]
    streams.drop_bad_widths()  # COLUMNS=0 would blank every table and the help
    runlock.COMMAND = " ".join(["dlsem", *map(shlex.quote, args)])  # what a refused second process is told

    def terminate(signum, frame):  # outside a training loop (which handles it itself): leave like Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM, even during exit, just ends it
        raise _Terminated

    # stdout/stderr closed, piped into `head`, or unable to encode a path: the command still runs to its end
    with streams.guarded():
        previous = signal.signal(signal.SIGTERM, terminate) if hasattr(signal, "SIGTERM") else None
        try:
            _run(args)
        finally:
            runlock.release_all()  # a sweep's directory; a run's is released when its training returns
            collector.release()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _run(args: list[str]) -> None:
    try:  # recent typer vendors click; older releases use the click package
        from typer._click import exceptions as clickx
    except ImportError:
        import click.exceptions as clickx

    from .errors import Interrupted, UserError

    try:
        rv = app(args=args, prog_name="dlsem", standalone_mode=False)
    except clickx.NoSuchOption as e:
        _fail(f"{e.format_message()} (see dlsem {e.ctx.info_name if e.ctx else ''} --help)".replace("dlsem dlsem", "dlsem"))
    except clickx.UsageError as e:
        _fail(e.format_message().replace("\n", " "))
    except typer.Abort:  # a KeyboardInterrupt inside a command (a second Ctrl-C), as click reports it
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except UserError as e:
        _fail(str(e))
    except Interrupted as e:
        if _talks():
            print(f"\n{e}: last.pt written; resume with: dlsem train --resume {e.path}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except _Terminated:
        print("\nterminated (SIGTERM)", file=sys.stderr)
        sys.exit(143)
    except OSError as e:  # disk full, permission denied, ...: an environment problem, not a bug
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        _fail(f"{e.strerror or e}{where}")
    sys.exit(rv if isinstance(rv, int) else 0)


class _Terminated(BaseException):
    """SIGTERM outside the training loop; a BaseException so that no `except Exception` swallows it."""


def _fail(msg: str) -> None:
    if _talks():
        print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _talks() -> bool:
    """Under torchrun every process runs the same command and meets the same mistakes: rank 0 says it."""
    from .console import talks

    return talks()


if __name__ == "__main__":
    main()
