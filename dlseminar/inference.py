"""A checkpoint put to use: `dlsem eval` (evaluate), `dlsem predict` (predict_images), and the checks
that a checkpoint's weights fit the model its config builds, said in the user's terms."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from . import io
from .assemble import Setup, build
from .config import SCHEMA, Config, resolve
from .engine import amp
from .engine import checkpoint as ckpt
from .engine.trainer import evaluate as evaluate_loader
from .errors import CheckpointError, ConfigError, UserError


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
                   features: bool = False, cam: bool = False):
    """The task's prediction for each image file (any size/mode): a classifier's top-k classes
    (inputs resized to the model's), a segmentation model's class mask (each image at its own
    size). With `out`, the task also writes its files there (annotated images, masks) and, with
    `features`, feature maps of the first image (their paths in the first result's "features");
    with `cam` (classifiers, needs `out`) a Grad-CAM heatmap of each image for its predicted class.

    The files are written all or none (io.staged): an existing file of the same name is refused
    unless `overwrite`, and an input image or the checkpoint never, even when `out` is their folder."""
    from .datasets.imageio import image_files, load_image

    if cam and out is None:
        raise ConfigError("--cam writes a heatmap image per input: give --out DIR")
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
        for xb in batches:
            xb = transform(xb.to(setup.device))
            with torch.inference_mode():
                outputs = task.predict(setup.model, xb).cpu()
            heat = _grad_cams(setup.model, xb, outputs) if cam else None
            for j, o in enumerate(outputs):
                i = len(results)
                r = {"image": str(files[i]), **task.describe(o, top_k)}
                if stage is not None:
                    extra = {"cam": (heat[0][j], heat[1])} if heat is not None else {}
                    r.update(task.write_prediction(stage, i, stems[i], X[i], o, r, setup.data, **extra))
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


def _grad_cams(model, x: torch.Tensor, probs: torch.Tensor, batch: int = 32) -> tuple[torch.Tensor, str]:
    """Grad-CAM heatmaps (B, H, W) of a classifier's batch for its predicted classes, and the feature map's
    name; a model that does not give one score per class (segmentation, detection) is refused by grad_cam."""
    from .viz.cam import grad_cam

    maps = [grad_cam(model, xb, pb.argmax(1)) for xb, pb in zip(x.split(batch), probs.split(batch))]
    return torch.cat([m for m, _ in maps]), maps[0][1]


def _unique_stems(files) -> list[str]:
    """File stems for output names; a repeated stem (a/x.png, b/x.jpg) gets -2, -3, ..."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        seen[f.stem] = seen.get(f.stem, 0) + 1
        out.append(f.stem if seen[f.stem] == 1 else f"{f.stem}-{seen[f.stem]}")
    return out


def feature_hierarchy(path: str, out: Path, sets=(), overwrite: bool = False) -> Path:
    """`dlsem predict --hierarchy`: out/features_hierarchy.png, the training patches that most excite
    filters of an early, a middle and a late conv layer of a checkpoint's model (image data)."""
    from .viz.hierarchy import hierarchy

    read = [(path, "the checkpoint being read")]
    io.check_dir(out, own=True, allow_run=True, inputs=read)
    saved, setup = load_for_inference(path, sets)  # its training images are what the filters are shown on
    with io.staged(out, overwrite=overwrite, inputs=read) as stage:
        if not hierarchy(stage / "features_hierarchy.png", setup.model, setup.data, setup.device):
            raise ConfigError(f"{path!r} is not a conv net on a tensor of images: the feature hierarchy needs one")
    return Path(out) / "features_hierarchy.png"
