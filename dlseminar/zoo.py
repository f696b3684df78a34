"""`dlsem zoo`: every image classifier of the model zoo trained on the same data with the same settings,
in one table: parameters, forward FLOPs per image, seconds per epoch, best val accuracy, test accuracy.

The training is a sweep (sweep.py) over model.name: each model is a member with its own run directory
under the zoo directory (`runs/zoo-shapes/model.name=resnet18/`), --jobs, failures that do not stop
the others, and a restart that skips finished members and resumes the others are the sweep's. The zoo
adds what a sweep does not know:

- params: sum(p.numel()) of the model as built for the dataset (GoogLeNet: with its auxiliary heads,
  which train with it);
- flops: torch.utils.flop_counter.FlopCounterMode on one forward pass of one input of the dataset's
  shape (1, C, H, W) in eval mode: forward FLOPs only, a multiply-add counts 2, and only the ops it has
  formulas for (convolutions, matrix products), not batch norm, activations or pooling;
- seconds per epoch: the mean of the member's metrics.csv `seconds` column;
- best val accuracy: val/acc at the member's best epoch (summary.json), test/acc with those weights.

The image classifiers are found in the registry, not listed here: models whose entry gives class
scores (its `outputs` metadata), that are not dense (per-pixel, `dense=True`, e.g. unet) and whose
builder refuses a flat feature vector (it needs C x H x W images: this keeps mlp and perceptron,
which flatten anything, out).

Base settings (BASE, and SHAPES for --data shapes; any --set overrides them): Adam at lr 3e-4 (AlexNet
and the VGGs without batch norm stay at chance at 1e-3), batch 32, no early stopping (every model gets
the same number of epochs), the best epoch's weights restored for the test; shapes: 1,000 images of
4 classes at 3x32x32 (600 train, 200 val, 200 test).
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

from . import io as files  # atomic writes (`io` here is the standard library's, for StringIO)
from .errors import ConfigError
from .viz import zoo as viz_zoo
from .viz.zoo import si

BASE = ("optim.name=adam", "optim.lr=0.0003", "train.batch_size=32", "early_stop.patience=0")
SHAPES = ("data.n_samples=1000", "data.num_classes=4", "data.image_size=32")
FLAT = (64,)  # the flat feature vector an image model refuses
OWN_OPTIONS = {"model.name": "--models", "data.name": "--data", "train.epochs": "--epochs", "out": "--out"}
# keys a sweep lets a restart change (a resume may), but that the models of one zoo must share to be compared
ALIKE = ("train.epochs", "early_stop.patience", "early_stop.min_delta", "train.on_nan", "device", "train.precision",
         "train.channels_last", "train.compile")


# ---------------------------------------------------------------- which models
def image_classifiers() -> list[str]:
    """The registered models that classify images (see the module docstring), sorted by name."""
    import torch

    from . import registry
    from .catalog import load_all
    from .config import resolve
    from .models import PLAIN

    load_all()
    names = []
    for e in registry.MODELS.entries():
        if "scores" not in e.meta.get("outputs", PLAIN) or e.meta.get("dense"):
            continue
        try:
            with torch.device("meta"):  # shapes only: no memory, no init time
                registry.call_builder(e, resolve(sets=[f"model.name={e.name}"]), "model", in_shape=FLAT,
                                      num_outputs=2, output_kind="scores")
        except ConfigError:  # "needs image inputs (C, H, W)"
            names.append(e.name)
    return names


def choose_models(models: str | None) -> list[str]:
    """--models a,b,c (in that order) or every image classifier; an unknown name: one error line."""
    valid = image_classifiers()
    if models is None:
        return valid
    names = [m.strip() for m in models.split(",")]
    if not all(names):
        raise ConfigError(f"--models {models!r} has an empty name; give names separated by commas, from: "
                          f"{', '.join(valid)}")
    bad = [m for m in names if m not in valid]
    if bad:
        from .registry import suggest

        hint = suggest(bad[0], valid) if len(bad) == 1 else ""
        verb = "is not an image classifier" if len(bad) == 1 else "are not image classifiers"
        raise ConfigError(f"--models: {', '.join(map(repr, bad))} {verb} of the zoo{hint}; "
                          f"choose from: {', '.join(valid)}")
    if len(set(names)) < len(names):
        raise ConfigError(f"--models {models!r} names a model twice")
    return names


# ---------------------------------------------------------------- the data
def member_sets(data: str, epochs: int, sets: list[str]) -> list[str]:
    """Every member's --set items: the zoo's base, the user's, then --data and --epochs."""
    for item in sets:
        key = item.partition("=")[0].strip()
        if key in OWN_OPTIONS:
            raise ConfigError(f"--set {key}=... is the zoo's {OWN_OPTIONS[key]} option; use that")
    return [*BASE, *(SHAPES if data == "shapes" else ()), *sets, f"data.name={data}", f"name=zoo-{data}",
            f"train.epochs={epochs}"]


def check_images(data: str, sets: list[str], model: str):
    """Build the dataset once: image classification data (C, H, W inputs) or one error line.
    Returns (DataInfo, task, the split sizes and chance level) for counting the models' parameters and
    FLOPs and for telling a model that learned from one that did not."""
    from . import registry
    from .catalog import load_all
    from .config import resolve
    from .datasets import build_data
    from .tasks import build_task

    load_all()
    entry = registry.DATASETS.get(data)  # an unknown name: one error line with a suggestion
    kind = entry.meta.get("kind", "")
    if kind not in ("classification", "any"):
        raise ConfigError(f"dlsem zoo compares image classifiers; dataset {data!r} is for {kind or 'another task'} "
                          f"(use an image classification dataset, e.g. --data shapes or digits_images)")
    cfg = resolve(sets=[*sets, f"model.name={model}"])
    built = build_data(cfg)
    info = built.info
    if info.kind != "classification" or len(info.in_shape) != 3:
        shape = info.in_shape
        what = f"inputs of {shape[0]} features" if len(shape) == 1 else f"inputs of shape {shape}"
        raise ConfigError(f"dlsem zoo compares image classifiers; dataset {data!r} gives {info.kind} data with "
                          f"{what}, not C x H x W images (use an image dataset, e.g. --data shapes or digits_images)")
    return info, build_task(cfg, info), chance_of(built)


def chance_of(data) -> dict:
    """What "not learned" means on this validation split: `chance`, the accuracy of always answering its
    most frequent class (1/K for balanced classes), and `learned_above`, chance plus two binomial standard
    errors of an accuracy on n_val samples (4 classes, 200 images: 0.25 + 0.061): a model whose best val
    accuracy is not above it cannot be told from guessing."""
    import torch

    y = data.splits["val"][1]
    n_val = len(y)
    chance = float(torch.bincount(y.long()).max()) / max(n_val, 1)
    se = math.sqrt(chance * (1 - chance) / max(n_val, 1))
    n_train = len(data.splits["train"][1])
    return {"chance": chance, "learned_above": chance + 2 * se, "n_val": n_val, "n_train": n_train}


def measure(model_name: str, sets: list[str], info, task) -> tuple[int, int]:
    """(parameters, forward FLOPs of one (1, C, H, W) input in eval mode) of the model as the member builds it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .config import resolve
    from .models import build_model

    cfg = resolve(sets=[*sets, f"model.name={model_name}"])
    with contextlib.redirect_stderr(io.StringIO()):  # "model.x is ignored by ...": the member's train.log says it
        model = build_model(cfg, info.in_shape, task.num_outputs, task.output_kind).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *info.in_shape))
    return params, int(counter.get_total_flops())


# ---------------------------------------------------------------- the zoo
def zoo(data: str = "shapes", epochs: int = 5, models: str | None = None, sets: list[str] = (), jobs: int = 1,
        out: str | None = None, echo=None, overwrite: bool = False) -> tuple[Path, list[dict], dict]:
    """Train (or continue) the zoo; returns its directory, the ranked rows and the data's description.
    overwrite: --out may be a non-empty folder that holds no sweep (sweep.choose_dir)."""
    from . import sweep

    names = choose_models(models)
    all_sets = member_sets(data, epochs, list(sets))
    info, task, level = check_images(data, all_sets, names[0])
    out = out or str(Path("runs") / f"zoo-{data}")
    check_alike(Path(out), names, all_sets)
    root, rows, _ = sweep.sweep(None, [f"model.name={','.join(names)}"], all_sets, jobs, out, echo, overwrite)
    out_rows = []
    for r in rows:
        name = r["settings"].get("model.name", r["run"])
        s = r.get("summary")  # None: the member wrote no summary.json
        best, test = (s.best, s.test) if s is not None else ({}, {})
        row = {"model": name, "status": r["status"], "error": r["error"], "dir": r["dir"],
               "val_acc": best.get("val/acc", math.nan), "val_loss": best.get("val/loss", math.nan),
               "test_acc": test.get("test/acc", math.nan),
               "best_epoch": "" if s is None else s.best_epoch, "epochs_run": "" if s is None else s.epochs_run,
               "seconds": math.nan if s is None or s.seconds is None else s.seconds}
        secs = [h["seconds"] for h in r["history"] if math.isfinite(h.get("seconds", math.nan))]
        row["s_per_epoch"] = sum(secs) / len(secs) if secs else math.nan
        try:
            row["params"], row["flops"] = measure(name, all_sets, info, task)
        except Exception as e:  # a model that cannot be built here has failed as a member too: say why there
            row["params"] = row["flops"] = None
            row["error"] = row["error"] or f"{type(e).__name__}: {e}"[:200]
        row["learned"] = learned(row, level)
        row["params_per_image"] = row["params"] / level["n_train"] if row["params"] and level["n_train"] else None
        out_rows.append(row)
    rank(out_rows)
    described = {"data": data, "in_shape": tuple(info.in_shape), "num_classes": info.num_classes, "epochs": epochs,
                 **level}
    write_csv(root / "zoo.csv", out_rows)
    (root / "plots").mkdir(parents=True, exist_ok=True)
    viz_zoo.zoo(root / "plots" / "zoo.png", out_rows, described)
    return root, out_rows, described


def check_alike(root: Path, names: list[str], sets: list[str]) -> None:
    """A zoo started again continues only with the same epochs, early stopping and speed settings: the sweep
    would skip a model finished with other ones (or resume one with the new ones) and mix them in one table."""
    import yaml

    from .config import resolve
    from .errors import UserError

    for name in names:
        path = root / f"model.name={name}" / "config.yaml"
        try:
            old = resolve(base=yaml.safe_load(path.read_text()))
        except (OSError, UserError, yaml.YAMLError):
            continue  # none yet (or unreadable: the member runs again and rewrites it)
        new = resolve(sets=[*sets, f"model.name={name}"])
        for key in ALIKE:
            if old[key] != new[key]:
                option = "--epochs" if key == "train.epochs" else f"--set {key}=..."
                raise ConfigError(f"{str(path.parent)!r} was trained with {key} = {old[key]!r}, this zoo asks for "
                                  f"{new[key]!r}: its models would not be trained alike; use {option} as before to "
                                  f"continue that zoo, or another --out")


def learned(row: dict, level: dict) -> bool | None:
    """Whether a finished model left chance: its best val accuracy above chance + 2 standard errors
    (chance_of). None: the member did not finish, there is nothing to judge."""
    if row["status"] != "finished" or not math.isfinite(row["val_acc"]):
        return None
    return row["val_acc"] > level["learned_above"]


def rank(rows: list[dict]) -> None:
    """Finished members by best val accuracy (ties: lower val loss), then diverged ones, then the rest."""
    def finite(v, sign=1.0):
        return sign * v if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    rows.sort(key=lambda r: ({"finished": 0, "diverged": 1}.get(r["status"], 2), finite(r["val_acc"], -1.0),
                             finite(r["val_loss"]), r["model"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i


COLUMNS = ("rank", "model", "status", "learned", "params", "params_per_image", "flops", "s_per_epoch", "val_acc",
           "test_acc", "best_epoch", "epochs_run", "seconds", "error", "dir")


def write_csv(path: Path, rows: list[dict]) -> None:
    """zoo.csv, atomically."""
    with files.atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k])) else
                        (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in COLUMNS])


def _num(v, fmt: str = ".4f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else ""


def table(rows: list[dict], described: dict, title: str = ""):
    """The ranked rich Table."""
    from rich.markup import escape
    from rich.table import Table

    from .ranked import status_markup

    t = Table("#", "model", "status", "params", "params/img", "FLOPs/img (fwd)", "s/epoch", "val/acc ↑", "test/acc",
              "best epoch", "note", title=title or None)
    for r in rows:
        if r["status"] != "finished" or r["params"] is None:
            note = escape(r["error"][:70])
        elif r.get("learned") is False:
            n = r["epochs_run"]
            note = f"[yellow]not learned in {n} epoch{'s' * (n != 1)}[/yellow] (chance {described['chance']:.2f})"
        else:
            note = ""
        per = r.get("params_per_image")
        t.add_row(str(r["rank"]), escape(r["model"]), status_markup(r["status"]),
                  f"{r['params']:,}" if r["params"] is not None else "", f"{per:,.0f}" if per else "",
                  si(r["flops"]), _num(r["s_per_epoch"], ".3g"), _num(r["val_acc"]), _num(r["test_acc"]),
                  f"{r['best_epoch']}/{r['epochs_run']}" if r["best_epoch"] != "" else "", note)
    return t


def footnote(described: dict) -> str:
    shape = "x".join(map(str, described["in_shape"]))
    return (f"FLOPs/img: one forward pass of a {shape} input, eval mode (FlopCounterMode: a multiply-add is 2 FLOPs; "
            f"convolutions and matrix products only); s/epoch: mean of metrics.csv seconds; params/img: parameters "
            f"per training image ({described['n_train']:,} here).\n"
            f"chance: {described['chance']:.2f} (always the most frequent class of the {described['n_val']} val "
            f"images); 'not learned': best val/acc not above {described['learned_above']:.3f} (chance + 2 standard "
            f"errors). A large network lags on a small dataset for two reasons the table shows: far more parameters "
            f"than images to fit them (params/img), and depth without batch norm or residual connections (AlexNet, "
            f"plain VGG), whose gradients shrink layer by layer at the start; at the zoo's shared settings they need "
            f"more epochs, a lower lr or warm-up (their recipes in configs/ give them), not a verdict on the design.")
