"""Layer-by-layer summary of a model (what `dlsem models show NAME --input 3x32x32` prints)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _shape(out) -> tuple[int, ...]:
    """Per-example shape of a leaf's output (the first tensor when it returns several)."""
    if isinstance(out, (tuple, list)):
        out = next((o for o in out if isinstance(o, torch.Tensor)), None)
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()


def layer_table(model: nn.Module, in_shape) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(layer name, layer type, output shape without the batch dim, parameters) per leaf-module call.

    Runs one zero input of batch 1 through the model in eval mode (train mode is restored
    after) with forward hooks on the leaf modules. A leaf called twice (a shared ReLU) gets
    a row per call, its parameters counted on the first only; leaves not called in eval mode
    (GoogLeNet's auxiliary heads) are not listed, so the column may sum to less than
    count_params(model).
    """
    return [(r.layer, r.kind, r.shape, r.params) for r in structure(model, in_shape) if r.call and not r.aux]


@dataclass
class Row:
    """One row of `dlsem models show`: a leaf-module call, or a step of the structure the slides teach
    that no leaf makes (a residual addition, a concatenation, an auxiliary head's branch: `link`)."""

    layer: str
    kind: str
    shape: tuple[int, ...]
    params: int
    dense: int | None = None  # a conv: parameters of the fully connected layer from its input size to its output size
    note: str = ""  # what the structure column says
    block: str = ""  # the block it belongs to (a box of `models show --plot`)
    link: tuple[str, str] | None = None  # ("residual" | "concat" | "unpool" | "branches" | "aux", source block)
    aux: bool = False  # part of an auxiliary head (called in training only)
    call: bool = True  # a leaf module's call; False: a step that no module makes (an addition, a concatenation)


def structure(model: nn.Module, in_shape) -> list[Row]:
    """The layer table with the structure the slides teach: per leaf-module call a row (params counted
    on a leaf's first call), a conv's fully connected equivalent, and rows for each residual addition
    (ResNet: identity or projection skip), concatenation (U-Net's skips, GoogLeNet's four branches),
    max-unpooling's switches, and the auxiliary heads that only training calls (GoogLeNet's two,
    placed after the block that feeds them). One zero input of batch 1 in eval mode, then, when
    modules with weights were left uncalled, one of batch 2 in train mode for those; the model's
    mode is restored after."""
    was_training = model.training
    try:
        model.eval()
        tracer = _Tracer(model)
        tracer.run(in_shape, batch=1)
        rows = tracer.rows
        uncalled = tracer.uncalled()
        if uncalled:
            model.train()
            rows = _with_aux(rows, _Tracer(model, only=uncalled), in_shape)
    finally:
        model.train(was_training)
    return rows


def _with_aux(rows: list[Row], tracer: _Tracer, in_shape) -> list[Row]:
    """`rows` with each auxiliary head's rows after the last row of the block that feeds it."""
    try:
        tracer.run(in_shape, batch=2)  # batch norm in training needs two values per channel
    except Exception:  # e.g. a detector: training needs targets; the table is shown without its heads
        return rows
    out = list(rows)
    for n, (head, source) in enumerate(tracer.heads.items(), 1):
        mine = [r for r in tracer.rows if r.block == head]
        for r in mine:
            r.aux, r.note = True, f"auxiliary head {n}"
        branch = Row(head, "branch", mine[-1].shape if mine else (), 0, block=head, link=("aux", source), aux=True,
                     call=False, note=f"auxiliary head {n} on {source}'s output (training only; loss x loss.aux_weight)")
        at = max((i for i, r in enumerate(out) if r.block == source), default=len(out) - 1) + 1
        out[at:at] = [branch, *mine]
    return out


class _Tracer:
    """Forward hooks that turn one forward pass into Rows, remembering which block made each tensor."""

    def __init__(self, model: nn.Module, only: list[str] | None = None):
        self.model, self.only = model, only  # only: record just these subtrees (the auxiliary heads)
        self.modules = dict(model.named_modules())
        self.rows: list[Row] = []
        self.called: set[str] = set()
        self.heads: dict[str, str] = {}  # auxiliary head -> the block whose output it reads
        self.made: dict[int, tuple[str, torch.Tensor]] = {}  # id(tensor) -> (block, tensor: kept so ids stay unique)
        self.switches: dict[int, str] = {}  # id(max-pool indices) -> the block whose output was pooled
        self.counted: set[str] = set()
        self.structures = _structures()

    def run(self, in_shape, batch: int) -> None:
        handles = []
        for name, m in self.modules.items():
            if name:
                handles += [m.register_forward_pre_hook(self._before(name)), m.register_forward_hook(self._after(name))]
        param = next(self.model.parameters(), None)
        x = torch.zeros(batch, *in_shape, device=param.device if param is not None else "cpu")
        try:
            with torch.no_grad():
                self.model(x)
        finally:
            for h in handles:
                h.remove()

    def block(self, name: str) -> str:
        """The shortest name prefix that is not a plain nn.Sequential or nn.ModuleList (ResNet's `layer1.0`,
        GoogLeNet's `inception3a`, U-Net's `down.0`); a leaf of a plain container (the cnn's `0`) is its own."""
        parts = name.split(".")
        for i in range(1, len(parts)):
            if type(self.modules[".".join(parts[:i])]) not in (nn.Sequential, nn.ModuleList):
                return ".".join(parts[:i])
        return name

    def source(self, t) -> str:
        return self.made.get(id(t), ("the input",))[0]

    def uncalled(self) -> list[str]:
        """The outermost modules with weights of their own (or below) that the pass never called."""
        heavy = [n for n, m in self.modules.items() if n and n not in self.called and any(True for _ in m.parameters())]
        return [n for n in heavy if not any(n.startswith(o + ".") for o in heavy)]

    def _recorded(self, name: str) -> bool:
        return self.only is None or any(name == o or name.startswith(o + ".") for o in self.only)

    def _before(self, name: str):
        def hook(_module, inputs):
            if self.only is not None and name in self.only and inputs:
                self.heads[name] = self.source(inputs[0])

        return hook

    def _after(self, name: str):
        def hook(module, inputs, out):
            self.called.add(name)
            block = self.block(name)
            outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(o, torch.Tensor)]
            if not self._recorded(name):
                pass
            elif not any(True for _ in module.children()):
                self._leaf(name, block, module, inputs, out)
            else:
                self._structure(name, module, inputs, out)
            if type(module) not in (nn.Sequential, nn.ModuleList):  # a plain container's tensor keeps its maker
                for o in outs:
                    self.made[id(o)] = (block, o)
            if isinstance(module, nn.MaxPool2d) and len(outs) == 2 and inputs:  # return_indices: the switches
                self.switches[id(outs[1])] = self.source(inputs[0])

        return hook

    def _leaf(self, name: str, block: str, module: nn.Module, inputs, out) -> None:
        params = 0 if name in self.counted else sum(p.numel() for p in module.parameters())
        self.counted.add(name)
        row = Row(name, type(module).__name__, _shape(out), params, block=block)
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and inputs:
            n_in, n_out = inputs[0][0].numel(), out[0].numel()
            row.dense = n_in * n_out + n_out  # weights and biases of a dense layer with the same sizes
        if isinstance(module, nn.MaxUnpool2d) and len(inputs) > 1:
            src = self.switches.get(id(inputs[1]), "a max-pool")
            row.note = f"max-unpooling: each value back where the pool over {src}'s output found its max"
            row.link = ("unpool", src)
        self.rows.append(row)

    def _structure(self, name: str, module: nn.Module, inputs, out) -> None:
        """Rows for the structure a container adds between its leaves (see _structures)."""
        for kind, describe in self.structures:
            if isinstance(module, kind):
                describe(self, name, module, inputs, out)


def _residual(tracer: _Tracer, name: str, block, inputs, out) -> None:
    """ResNet's block: out = relu(F(x) + skip(x)), skip the identity or a 1x1 conv projection."""
    if block.downsample is None:
        note = "residual: relu(F(x) + x), identity skip"
    else:
        conv = block.downsample[0]
        note = (f"residual: relu(F(x) + Wx), projection skip {name}.downsample "
                f"(1x1 conv stride {conv.stride[0]}, {conv.in_channels}->{conv.out_channels}, + BN)")
    tracer.rows.append(Row(name, "add", _shape(out), 0, note=note, block=name, link=("residual", name), call=False))


def _branches(tracer: _Tracer, name: str, block, inputs, out) -> None:
    """GoogLeNet's inception module: four parallel branches concatenated along the channels."""
    kinds, widths = [], []
    for b in (block.branch1, block.branch2, block.branch3, block.branch4):
        steps = [m for m in b.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
        kinds.append("-".join("pool" if isinstance(m, nn.MaxPool2d) else "x".join(map(str, m.kernel_size))
                              for m in steps))
        widths.append(str(steps[-1].out_channels))
    note = f"concat of 4 parallel branches ({' | '.join(kinds)}): {' + '.join(widths)} channels"
    tracer.rows.append(Row(name, "concat", _shape(out), 0, note=note, block=name, link=("branches", name), call=False))


def _skip_concat(tracer: _Tracer, name: str, block, inputs, out) -> None:
    """U-Net's decoder step: the encoder's map (the skip) concatenated to the upsampled one, before its convs."""
    skip = inputs[1]
    src = tracer.source(skip)
    at = next((i for i, r in enumerate(tracer.rows) if r.layer.startswith(f"{name}.conv.")), len(tracer.rows))
    shape = (block.conv[0].in_channels, *skip.shape[-2:])
    note = f"skip concatenation: {src}'s output ({'x'.join(map(str, skip.shape[1:]))}) + the upsampled map"
    tracer.rows.insert(at, Row(name, "concat", shape, 0, note=note, block=name, link=("concat", src), call=False))


def _structures() -> list[tuple]:
    """(container type, what it adds to the table). torchvision's types only once torchvision is loaded:
    a model built from it has loaded it, and `models show cnn` need not pay for its import."""
    from .unet import Up

    table: list[tuple] = [(Up, _skip_concat)]
    if "torchvision" in sys.modules:
        from torchvision.models.googlenet import Inception
        from torchvision.models.resnet import BasicBlock, Bottleneck

        table += [((BasicBlock, Bottleneck), _residual), (Inception, _branches)]
    return table
