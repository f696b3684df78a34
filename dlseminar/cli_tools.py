"""Commands beyond the run itself: `dlsem explain` (the deck's worked numbers), `dlsem surface` (the
loss surface and the optimizer's path) and `dlsem export` (a checkpoint as one file to ship).

The command functions live here and cli.py registers them, so cli.py stays short and every heavy
import stays inside a command (`dlsem --help` loads no torch).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .cli_help import SET_HELP


def explain(
    topic: str = typer.Argument(..., help="perceptron | softmax | loss | backprop | conv | pool | image | activations"),
    weights: Optional[str] = typer.Option(None, "--weights", metavar="W",
                                          help="perceptron: w0,w1,...,wk (bias first); backprop: each layer's matrix "
                                               "as rows separated by ';' (bias row first), layers by '|'."),
    input_: Optional[str] = typer.Option(None, "--input", metavar="VALUES",
                                         help="perceptron, backprop: x1,x2,...; conv: CxHxW (e.g. 1x48x48); "
                                              "pool: a grid, rows separated by ';'."),
    label: Optional[str] = typer.Option(None, "--label", metavar="Y",
                                        help="loss: the label(s), e.g. 0,1 or 25; backprop: the target."),
    prediction: Optional[str] = typer.Option(None, "--prediction", metavar="YHAT",
                                             help="loss: the network's output, e.g. 0.83,0.17 (rows separated by ';') "
                                                  "or 23.5."),
    loss: Optional[str] = typer.Option(None, "--loss", help="loss: ce|mse|mae (default: ce for probabilities, "
                                       "else mse and mae); backprop: bce|mse."),
    logits: Optional[str] = typer.Option(None, "--logits", metavar="Z",
                                         help="softmax: class scores, rows separated by ';', e.g. '5,4,2; 4,2,8'."),
    classes: Optional[str] = typer.Option(None, "--classes", metavar="NAMES",
                                          help="softmax: class names, e.g. cat,dog,horse."),
    temperature: Optional[float] = typer.Option(None, "--temperature", metavar="T",
                                                help="softmax: T in e^(z/T) (default 1)."),
    activation: Optional[str] = typer.Option(None, "--activation", metavar="NAME",
                                             help="perceptron: sigmoid|identity; backprop (hidden units): "
                                                  "sigmoid|tanh|relu."),
    lr: Optional[float] = typer.Option(None, "--lr", help="backprop: learning rate α (default 0.1)."),
    filters: Optional[str] = typer.Option(None, "--filters", metavar="F,...", help="conv: filters per layer, e.g. 8,16."),
    kernels: Optional[str] = typer.Option(None, "--kernels", metavar="K,...",
                                          help="conv: kernel size per layer (or one for all), e.g. 3."),
    strides: Optional[str] = typer.Option(None, "--strides", metavar="S,...",
                                          help="conv: stride per layer (or one for all), e.g. 1."),
    pool: Optional[int] = typer.Option(None, "--pool", metavar="N", help="conv: NxN max pooling after each layer "
                                       "(1: none; default 2); pool: the window (default 2)."),
    index: Optional[int] = typer.Option(None, "--index", metavar="N",
                                        help="image: which digit of the bundled digits (0-1796)."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE",
                                       help="activations: the PNG to write (default explain_activations.png here)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="activations: replace an existing --out file."),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
):
    """The deck's worked numbers, recomputed: formula, inputs, every intermediate value and the result.
    Defaults are the slide's example; the options take your own numbers."""
    from . import explain as explanations

    given = dict(weights=weights, input=input_, label=label, prediction=prediction, loss=loss, logits=logits,
                 classes=classes, temperature=temperature, activation=activation, lr=lr, filters=filters,
                 kernels=kernels, strides=strides, pool=pool, index=index,
                 out=None if out is None else str(out), overwrite=overwrite or None)
    result = explanations.run(topic, {k: v for k, v in given.items() if v is not None})  # only what was given
    print(json.dumps(result) if json_ else explanations.render(result))


def export_(
    ckpt: Path = typer.Argument(..., help="A checkpoint: RUN/best.pt or RUN/last.pt."),
    format_: str = typer.Option(..., "--format", help="onnx (needs: pip install 'dlseminar\\[export]') | pt2 "
                                "(torch.export) | torchscript. Detectors: torchscript only."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="The file to write (default: beside the "
                                       "checkpoint, e.g. RUN/best.onnx; a rerun replaces it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file (never the checkpoint "
                                   "or a run's own files)."),
):
    """Write a checkpoint as one file to ship: ONNX, torch.export's .pt2 or TorchScript. It takes raw inputs
    (pixel values 0-255, or the table's feature columns: the checkpoint's normalisation is inside), returns
    what `dlsem predict` shows (class probabilities, per-pixel class probabilities, values in the data's
    units, a detector's boxes), has a dynamic batch size and carries the class names and input shape."""
    from .export import export as export_model

    result = export_model(ckpt, format_, out, overwrite)
    meta = result["metadata"]
    print(f"wrote {result['path']} ({result['format']}, {result['bytes'] / 1e6:.2f} MB)")
    print(f"input: {meta['input']}")
    print(f"output: {meta['output']}")
    print(f"checked: its outputs match the checkpoint's model to {result['max_diff']:.1g} (batches of 1 and 3)")


def surface(
    config: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the embedded default config)."),
    grid: List[str] = typer.Option([], "--grid", help="key=value1,value2,...: one path per value, all on one map, "
                                   "e.g. --grid optim.name=sgd,momentum,rmsprop,adam or --grid optim.lr=0.05,0.14,0.17"),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Grid points per axis (default: 41 over two "
                                             "weights, 21 for a network's slice)."),
    directions: str = typer.Option("pca", "--directions", help="A network's slice: pca (the plane of the path's two "
                                   "main directions) or random (two filter-normalised random directions)."),
    fix: List[str] = typer.Option([], "--fix", help="NAME=VALUE: hold a parameter at a value, e.g. --fix "
                                  "linear.bias=0 (the regression plane with w0 fixed: two weights left)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default runs/<name>-surface)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out (never the recipe's "
                                   "folder or a run's)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """The loss surface with the optimizer's path on it: the exact loss over two weights, else a slice through
    the trained weights (Li et al. 2018); --grid overlays several optimizers or learning rates."""
    from . import surface as surfaces
    from .config import resolve

    cfg = resolve(config, set_)
    result = surfaces.run(cfg, grid, out, overwrite, resolution, fix, directions)
    for t in result["paths"]:
        loss = "-" if t["final_loss"] is None else f"{t['final_loss']:.4g}"
        print(f"{t['label']}: {t['status']}, final loss {loss} after {t['steps']} steps")
    print(f"plot: {result['folder'] / 'surface.png'}")
