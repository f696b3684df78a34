"""What a run's parts will take, counted before they exist: on a probe of a few samples or weights,
or on the meta device (shapes only).

- sample_bytes(cfg, fn): a generated dataset's bytes a sample, from a probe of PROBE_SAMPLES
  samples (scaled by area to data.image_size);
- model_weights(...): a model's parameters and their bytes, from a copy built on the meta device;
- estimate_step(cfg, setup): one training step's memory by part (gradients, the optimizer's state
  per weight, found by trying the configured optimizer on 1,000 weights; the activations autograd
  keeps for backward, from a forward pass of the real batch size on the meta device; on a GPU the
  dataset) and the FLOPs of its convolutions and linear layers.

memory.py compares these with the free memory and says what cannot fit or will be slow.
Measured against real steps by benchmarks/memory_estimate.py (within about 20% where it matters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

PROBE_SAMPLES = 10  # samples a generated dataset is probed with
DATA_COPIES = 2.5  # generating and splitting hold the data this many times over, at the least (measured: 2.7-8)
BACKWARD_WORKSPACE = 2  # backward holds about this many of the largest activation besides the saved ones
HALF_ACTIVATIONS = 0.6  # bf16/fp16 autocast: activations shrink to about this share (norms stay float32)


def nbytes(obj, _seen=None) -> int:
    """Bytes of the tensors and arrays in obj (tensors, arrays, lists, tuples, dicts, dataclasses), each once."""
    import numpy as np

    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v, seen) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(nbytes(getattr(obj, f), seen) for f in obj.__dataclass_fields__)
    return 0


# ----------------------------------------------------------------------------- the dataset

def sample_bytes(cfg, fn) -> float | None:
    """Bytes one sample of the generated dataset `fn` (a builder taking n_samples) takes under `cfg`: a
    probe of PROBE_SAMPLES samples at the dataset's own image size, scaled by area to data.image_size.
    None when the builder refuses the probe. The random streams are left as they were."""
    import inspect

    import numpy as np

    params = inspect.signature(fn).parameters
    data = cfg.section("data")
    kwargs = {p: data[p] for p in params if p in data}
    kwargs.update({k: v for k, v in (("seed", cfg["seed"]), ("task", cfg["task"])) if k in params})
    kwargs["n_samples"] = PROBE_SAMPLES
    size = kwargs.get("image_size")
    if size:
        kwargs["image_size"] = None  # probe at the dataset's own size, scale by area below
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            probe = fn(**kwargs)
    except Exception:  # a probe the builder refuses (its own checks run again, with the real options)
        return None
    finally:
        np.random.set_state(state)
    per_sample = nbytes(probe) / PROBE_SAMPLES
    side = _image_side(probe)
    if size and side:
        per_sample *= (size / side) ** 2
    return per_sample


def _image_side(container) -> int | None:
    """The width of a probe's images (the first 3-D or 4-D tensor found), None for tables."""
    for f in getattr(container, "__dataclass_fields__", ()):
        v = getattr(container, f)
        if isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            v = v[0]
        if isinstance(v, torch.Tensor) and v.dim() in (3, 4):
            return int(v.shape[-1])
    return None


# ----------------------------------------------------------------------------- the model's weights

def model_weights(cfg, in_shape, num_outputs: int, output_kind: str) -> tuple[int, int] | None:
    """(parameters, bytes of the parameters and buffers) of the model `cfg` builds, counted on a copy
    built on the meta device (shapes only; its builder's notes are not repeated). None when the
    builder needs real tensors or refuses the config (it says so again, for real)."""
    import contextlib
    import io
    import warnings

    from .models import build_model

    try:
        with torch.device("meta"), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(cfg, in_shape, num_outputs, output_kind)
    except Exception:
        return None
    count = sum(t.numel() for t in model.parameters())
    return count, sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


# ----------------------------------------------------------------------------- one training step

@dataclass
class Pass:
    """What one forward pass of a batch keeps and computes (from the meta device)."""

    saved: int = 0  # bytes autograd keeps for backward (parameters excluded)
    largest: int = 0  # the largest single activation, bytes
    flops: float = 0.0  # forward FLOPs of convolutions and linear layers (a multiply-add is 2)
    seen: set = field(default_factory=set)


def forward_pass(model: torch.nn.Module, in_shape, batch: int) -> Pass | None:
    """Count a training-mode forward of `batch` samples on the meta device; None if the model cannot run there.

    The model's parameters and buffers are swapped for meta tensors for the call only
    (torch.func.functional_call), so nothing real is read, written or allocated."""
    from torch.func import functional_call

    meta = {n: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad) for n, t in model.named_parameters()}
    params = {id(t) for t in meta.values()}
    meta.update({n: torch.empty_like(t, device="meta") for n, t in model.named_buffers()})
    p = Pass()

    def pack(t):
        base = t._base if t._base is not None else t  # views of one tensor count once; weights (and their .t()) not at all
        if id(base) not in params and id(base) not in p.seen:
            p.seen.add(id(base))
            size = base.numel() * base.element_size()
            p.saved += size
            p.largest = max(p.largest, size)
        return t

    def count(module, inputs, out):
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() < 2 or not isinstance(out, torch.Tensor):
            return
        if isinstance(module, torch.nn.modules.conv._ConvTransposeNd):  # each input value meets a weight slice
            p.flops += 2.0 * inputs[0].numel() * w[0].numel()
        else:  # Linear, ConvNd: each output value is a dot product over a weight row
            p.flops += 2.0 * out.numel() * w[0].numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not any(True for _ in m.children())]
    was = model.training
    try:
        model.train()
        x = torch.empty((batch, *in_shape), device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            functional_call(model, meta, (x,))
    except Exception:  # lists of images (detectors), a data-dependent branch, an op without a meta kernel
        return None
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    p.seen = set()
    return p


def optimizer_values_per_weight(cfg) -> int:
    """How many values the configured optimizer keeps per weight (Adam 2, momentum 1, SGD 0), by trying it
    on one parameter of 1,000 weights."""
    from .registry import OPTIMIZERS

    w = torch.nn.Parameter(torch.zeros(1000))
    opt = OPTIMIZERS.get(cfg["optim.name"]).fn([w], **cfg.section("optim"))
    w.grad = torch.zeros(1000)
    opt.step()
    return sum(t.numel() for t in opt.state[w].values() if isinstance(t, torch.Tensor)) // 1000


@dataclass
class Step:
    """The estimate of one training step: bytes by part, what it is in words, forward FLOPs (None: unknown)."""

    what: str
    parts: dict[str, float]  # "activations", "gradients and adam's state", "the dataset" -> bytes
    advice: dict[str, str]  # the same keys -> what to change when that part is the largest
    device: torch.device
    flops: float | None
    full: bool
    steps: int  # optimizer steps per epoch

    @property
    def need(self) -> float:
        return sum(self.parts.values())


def estimate_step(cfg, setup, world: int = 1) -> Step | None:
    """What one training step of `setup` under `cfg` adds in memory on its device (None: no train split).

    Counted: gradients and the optimizer's state of the trainable weights, the activations kept for
    backward (or, when larger, those of an evaluation batch), and on a GPU the dataset the loaders
    move there, with each epoch's shuffled copy of the training split. The weights themselves are
    already in memory and not counted."""
    data, model, device = setup.data, setup.model, setup.device
    if "train" not in data.splits:
        return None
    n_train = _count(data.splits["train"])
    full = cfg["train.batch_size"] == "full"
    batch = n_train if full else min(int(cfg["train.batch_size"]), n_train)
    per_process = max(1, math.ceil(batch / world))  # each process takes its part of the global batch
    trainable = sum(t.numel() * t.element_size() for t in model.parameters() if t.requires_grad)
    states = optimizer_values_per_weight(cfg)
    image = len(data.info.in_shape) == 3
    fwd = forward_pass(model, data.info.in_shape, per_process)
    acts = 0.0
    if fwd is not None:
        acts = fwd.saved + BACKWARD_WORKSPACE * fwd.largest
        if cfg["train.precision"] != "32":
            acts *= HALF_ACTIVATIONS
        eval_batch = min(cfg["train.eval_batch_size"], max(_count(s) for s in data.splits.values()))
        acts = max(acts, 2 * fwd.largest * eval_batch / per_process)  # inference keeps about two layers' outputs
    on_device = 0 if device.type == "cpu" else nbytes(data.splits)  # the loaders move every split there
    shuffled = nbytes(data.splits["train"]) if not full and batch < n_train else 0  # each epoch's permuted copy
    times = world if device.type == "cpu" else 1  # processes on one machine share its RAM
    opt_part = f"gradients and {cfg['optim.name']}'s state"
    parts = {"activations": acts * times, opt_part: trainable * (1 + states) * times,
             "the dataset": (on_device + shuffled) * times}
    advice = {"activations": "use a smaller train.batch_size" + (" or data.image_size" if image else ""),
              opt_part: "use a smaller model" + (" or an optimizer with less state (sgd)" if states else ""),
              "the dataset": "use a smaller dataset" + (" or --device cpu" if device.type != "cpu" else "")}
    samples = f"{per_process:,} samples" + (f" of {'x'.join(map(str, data.info.in_shape))}" if image else "")
    what = (f"one training step of {cfg['model.name']} with batch_size {cfg['train.batch_size']}"
            + (f" ({samples}{' in each of %d processes' % world if world > 1 else ''})" if full or image else ""))
    return Step(what, parts, advice, device, None if fwd is None else 3 * fwd.flops, full,
                math.ceil(n_train / batch))


def _count(split) -> int:
    """Samples in a split: its inputs' first dimension, or its length (lists of images)."""
    x = split[0] if isinstance(split, (tuple, list)) and split else split
    return int(x.shape[0]) if isinstance(x, torch.Tensor) else len(x)
