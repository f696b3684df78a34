"""`dlsem export`: a checkpoint as one file to ship (ONNX, torch.export's .pt2, TorchScript).

The file holds the model together with what the checkpoint knows about its inputs and outputs, so it
takes what a user has and gives what `dlsem predict` shows:
- in: raw feature columns (tables, in DataInfo.feature_names order; text columns one-hot, as
  training encoded them) or raw pixel values (images, 0-255, as float32); the standardisation the
  checkpoint stores (data_stats) is inside the file, done as data/core.py BatchNorm and Table.split do;
- out: the task's link (Task.predict): class probabilities, per-pixel class probabilities (U-Net),
  regression predictions in the data's units, a detector's boxes/labels/scores per image;
- metadata: class names, input shape and what the input and output are (ONNX: metadata_props;
  .pt2 and TorchScript: the file `dlseminar.json` inside the archive; `load` reads all three);
- the batch dimension is dynamic; height and width are the training size (detectors: any size).

Exporters: ONNX by torch.onnx.export's default, torch.export-based exporter (dynamo=True: it takes a
dynamic batch as a torch.export Dim, works offline, and is the one torch maintains; it needs the
`export` extra: onnx, onnxscript; onnxruntime checks the file). .pt2 by torch.export.export +
torch.export.save. TorchScript by torch.jit.trace (torch.jit.script for detectors).

Detectors (fasterrcnn) export to TorchScript only: torch.export, and so the ONNX exporter built on it,
cannot trace torchvision's non-maximum suppression, whose output size depends on the data (torch 2.14).

Every file is checked before it is moved into place: loaded back (onnxruntime, torch.export.load,
torch.jit.load) and run on a batch of 1 and of 3, its outputs equal to the checkpoint's model
within 1e-4, else nothing is written.
"""
from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

from . import __version__, io
from .errors import ConfigError, UserError
from .inference import load_for_inference

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript"}  # format -> default suffix
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the `export` extra
EXTRA = "pip install 'dlseminar[export]'"
META_FILE = "dlseminar.json"  # the metadata inside a .pt2 or TorchScript archive
TOLERANCE = 1e-4  # largest difference to the checkpoint's model an exported file may show
OUTPUTS = {  # what each task's exported model returns (the metadata's "output")
    "classification": "class probabilities (batch, classes), in class_names order",
    "segmentation": "class probabilities per pixel (batch, classes, height, width), in class_names order",
    "regression": "predictions in the data's units (batch, targets)",
    "detection": "one dict per image: boxes (N, 4) as x1, y1, x2, y2 in pixels, labels (N,) "
                 "(1 = class_names[0]), scores (N,)",
}


class Deployable(nn.Module):
    """Raw inputs -> what `dlsem predict` shows: the checkpoint's standardisation, its model, the task's link."""

    def __init__(self, model: nn.Module, task, data):
        super().__init__()
        self.model, self.task = model, task
        norm = data.transform("cpu")  # images kept raw in memory: BatchNorm does it per batch
        self.per_batch = norm is not None
        if self.per_batch:  # float32, as BatchNorm does it: x / scale, then per channel (x - mean) / std
            self.scale = norm.scale
            mean, std = norm.mean, norm.std
        else:  # a table standardised once, in float64 (Table.split): the same here, so the model sees the same
            self.scale = 1.0
            mean, std = (data.stats[k].double() if k in data.stats else None for k in ("mean", "std"))
        dtype = torch.float32 if self.per_batch else torch.float64
        # no stats: identity (x - 0) / 1, exact in floating point, one graph for every checkpoint
        self.register_buffer("mean", torch.zeros((), dtype=dtype) if mean is None else mean)
        self.register_buffer("std", torch.ones((), dtype=dtype) if std is None else std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *in_shape) raw values
        if self.per_batch:
            x = (x.float() / self.scale - self.mean) / self.std
        else:
            x = ((x.double() - self.mean) / self.std).float()
        return self.task.predict(self.model, x).float()  # regression decodes in float64: float32 out, as inputs


class DeployableDetector(nn.Module):
    """Raw images (B, C, H, W) -> one {"boxes", "labels", "scores"} per image; written to be scripted."""

    def __init__(self, model: nn.Module, data):
        super().__init__()
        self.model = model
        norm = data.transform("cpu")
        self.scale = float(norm.scale) if norm is not None else 1.0
        self.register_buffer("mean", torch.zeros(()) if norm is None or norm.mean is None else norm.mean)
        self.register_buffer("std", torch.ones(()) if norm is None or norm.std is None else norm.std)

    def forward(self, x: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        x = (x.float() / self.scale - self.mean) / self.std
        out = self.model(list(x.unbind(0)))
        if torch.jit.is_scripting():  # scripted, torchvision's detectors return (losses, detections)
            return out[1]
        return out


def export(ckpt: str | Path, fmt: str, out: str | Path | None = None, overwrite: bool = False) -> dict:
    """Write checkpoint `ckpt` as a `fmt` file (default: beside it, RUN/best.onnx, .pt2, .torchscript).

    The default file is the command's own and a rerun replaces it; any other existing --out only with
    `overwrite`, and never the checkpoint or a run's own files. Returns {path, format, bytes, max_diff,
    metadata}: max_diff is the largest difference of the written file's outputs to the model's."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if fmt == "onnx":
        require_onnx()
    ckpt = Path(ckpt)
    default = ckpt.with_suffix(FORMATS[fmt])
    target = Path(out) if out is not None else default
    own = target == default or (target.exists() and default.exists() and io.same_path(target, default))
    io.check_file(target, overwrite=overwrite, own=own, inputs=[(ckpt, "the checkpoint being read")],
                  what=f"the exported model to {str(target)!r}")  # before any work: a refusal costs nothing
    saved, setup = load_for_inference(str(ckpt), sets=["device=cpu"], load_data=False)
    info, name = setup.data.info, setup.cfg["model.name"]
    detector = info.kind == "detection"
    if detector and fmt != "torchscript":
        raise ConfigError(f"--format {fmt} cannot export the detector {name!r}: torch.export cannot trace "
                          f"torchvision's non-maximum suppression (its output size depends on the data); "
                          f"use --format torchscript")
    module = (DeployableDetector(setup.model, setup.data) if detector
              else Deployable(setup.model, setup.task, setup.data)).eval()
    meta = metadata(saved, setup, fmt)
    example = example_inputs(setup.data, 2)  # 2: torch.export takes a batch of 1 for a constant
    # once eagerly first: a task's lazily cached constants (regression's target scale) then exist before
    # a tracer looks, and the model is known to run on the example
    with torch.no_grad():
        module(example)
    target.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(target) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the check below is what counts
        try:
            WRITERS[fmt](module, example, tmp, meta, detector)
        except UserError:
            raise
        except Exception as e:  # what the exporter cannot follow, in its own first line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ConfigError(f"torch could not export model {name!r} as {fmt}: {first}") from None
        run, _ = load(tmp, fmt)
        with torch.no_grad():
            diff = max(_difference(run(x), module(x)) for x in (example_inputs(setup.data, n, seed=1) for n in (1, 3)))
        if not diff <= TOLERANCE:
            raise UserError(f"the {fmt} file's outputs differ from the checkpoint's model by {diff:.2g} "
                            f"(more than {TOLERANCE:g}); nothing written")
    return {"path": target, "format": fmt, "bytes": target.stat().st_size, "max_diff": diff, "metadata": meta}


def require_onnx() -> None:
    """The `export` extra is installed, else one line saying how to install it."""
    missing = []
    for pkg in ONNX_PACKAGES:
        try:
            importlib.import_module(pkg)
        except ImportError:
            missing.append(pkg)
    if missing:
        raise ConfigError(f"--format onnx needs {', '.join(missing)} (the optional `export` extra): {EXTRA}")


def metadata(saved: dict, setup, fmt: str) -> dict:
    """What the exported file carries about itself: JSON-ready values."""
    info, detector = setup.data.info, setup.data.info.kind == "detection"
    shape = ["batch", *info.in_shape] if not detector else ["batch", info.in_shape[0], "height", "width"]
    norm = setup.data.transform("cpu")
    raw = f"raw pixel values 0-{norm.scale:g}" if norm is not None else "raw feature columns in feature_names order"
    meta = {"producer": f"dlseminar {__version__}", "format": fmt, "task": info.kind,
            "model": setup.cfg["model.name"], "dataset": info.name, "epoch": saved.get("epoch"),
            "class_names": list(info.class_names), "input_shape": shape,
            "input": f"float32 ({', '.join(map(str, shape))}): {raw}; the checkpoint's normalisation is inside",
            "output": OUTPUTS.get(info.kind, "the model's outputs")}
    if info.feature_names:
        meta["feature_names"] = list(info.feature_names)
    if info.kind == "regression":
        meta["target_name"] = info.target_name
    return meta


def example_inputs(data, n: int, seed: int = 0) -> torch.Tensor:
    """n raw inputs of the data's shape: pixels 0..scale, or feature columns around their mean."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, *data.info.in_shape)
    norm = data.transform("cpu")
    if norm is not None:
        return torch.randint(0, int(norm.scale) + 1, shape, generator=g).float()
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if "mean" in data.stats:
        x = x * data.stats["std"].double() + data.stats["mean"].double()
    return x.float()


def _batch_dim():
    return ({0: torch.export.Dim("batch", min=1)},)


def _write_onnx(module, example, path: Path, meta: dict, detector: bool) -> None:
    program = torch.onnx.export(module, (example,), dynamic_shapes=_batch_dim(), input_names=["input"],
                                output_names=["output"], verbose=False)
    program.model.metadata_props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    program.save(path, external_data=False)  # one file (the zoo's largest, VGG, is far below ONNX's 2 GB)


def _write_pt2(module, example, path: Path, meta: dict, detector: bool) -> None:
    program = torch.export.export(module, (example,), dynamic_shapes=_batch_dim())
    torch.export.save(program, path, extra_files={META_FILE: json.dumps(meta)})


def _write_torchscript(module, example, path: Path, meta: dict, detector: bool) -> None:
    with torch.no_grad():  # scripting keeps the detector's loops over images and boxes; tracing unrolls them
        scripted = torch.jit.script(module) if detector else torch.jit.trace(module, (example,), check_trace=False)
    torch.jit.save(scripted, str(path), _extra_files={META_FILE: json.dumps(meta)})


WRITERS = {"onnx": _write_onnx, "pt2": _write_pt2, "torchscript": _write_torchscript}


def load(path: str | Path, fmt: str | None = None):
    """(run, metadata) of an exported file: run(x) takes a float32 tensor of raw inputs and returns the
    outputs as torch tensors (a detector's: a list of dicts); without `fmt`, the suffix tells the format."""
    path = Path(path)
    fmt = fmt or next((f for f, suffix in FORMATS.items() if path.suffix == suffix), "torchscript")
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        props = session.get_modelmeta().custom_metadata_map
        return (lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])), \
            {k: _json_or_text(v) for k, v in props.items()}
    extra = {META_FILE: ""}  # filled in by the loaders
    if fmt == "pt2":
        module = torch.export.load(str(path), extra_files=extra).module()
    else:
        with warnings.catch_warnings():  # torch 2.14 calls TorchScript deprecated; its files still load
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), _extra_files=extra)
    return module, json.loads(extra[META_FILE])


def _json_or_text(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def _difference(got, want) -> float:
    """Largest absolute difference between two outputs (tensors, or a detector's lists of dicts)."""
    if isinstance(want, torch.Tensor):
        if got.shape != want.shape:
            return float("inf")
        return float((got.double() - want.double()).abs().max()) if want.numel() else 0.0
    if len(got) != len(want) or any(g.keys() != w.keys() or any(g[k].shape != w[k].shape for k in w)
                                    for g, w in zip(got, want)):
        return float("inf")  # a different number of images or detections
    return max([_difference(g[k], w[k]) for g, w in zip(got, want) for k in w], default=0.0)
