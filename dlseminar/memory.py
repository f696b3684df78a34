"""What a run will need, estimated before it is spent: refuse what cannot fit, say what will be slow.

Checks, each a few milliseconds for a small run, each before what it guards is allocated:

- check_dataset(cfg), before a generated dataset (one with data.n_samples) is made: a probe of
  10 samples, scaled to data.n_samples (and by area to data.image_size), times the copies that
  generating and splitting make, against the free RAM;
- check_bytes(...), for a reader that knows its decoded size up front (folder);
- check_model(...), before the model is built: its weights, counted on a copy built on the meta
  device (shapes only);
- check_step(cfg, setup), before the first training step: the gradients, the optimizer's state
  per weight (counted by trying the configured optimizer on 1,000 weights: no list of optimizer
  names here), and the activations autograd keeps for backward, counted on a forward pass of the
  real batch size on the meta device (nothing allocated or computed). On a GPU the dataset, which
  the loaders move there whole, counts too. The same pass counts the multiply-adds of the
  convolutions and linear layers: a step that would take more than SLOW_STEP_S even at a good
  rate gets a note.

Free memory: /proc/meminfo MemAvailable within the cgroup's limit, or torch.cuda.mem_get_info.
What cannot fit stops with one ConfigError line holding the estimate. A model whose forward does
not run on the meta device (a detector's lists of images) is checked without its activations.
Measured against real steps by benchmarks/memory_estimate.py (within about 20% where it matters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .console import note
from .errors import ConfigError

GB = 1e9
PROBE_SAMPLES = 10  # samples a generated dataset is probed with
DATA_COPIES = 2.5  # generating and splitting hold the data this many times over, at the least (measured: 2.7-8)
BACKWARD_WORKSPACE = 2  # backward holds about this many of the largest activation besides the saved ones
HALF_ACTIVATIONS = 0.6  # bf16/fp16 autocast: activations shrink to about this share (norms stay float32)
SLOW_STEP_S = 10.0  # a step estimated longer than this gets a note
# FLOP/s a training step reaches at best (measured: 10-20 GFLOP/s for resnet18 steps on a busy 2-core CPU;
# the CPU's figure is per thread): optimistic on purpose, so that the slow-step note is never a false alarm
FLOP_RATE = {"cpu": 25e9, "cuda": 30e12, "mps": 3e12}


def gb(n: float) -> str:
    """Bytes in the unit a reader compares: 37.6 TB, 38.2 GB, 250 MB, 3.1 KB."""
    if n >= 1e13:
        return f"{n / 1e12:,.0f} TB"
    if n >= 1e12:
        return f"{n / 1e12:.1f} TB"
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


# ----------------------------------------------------------------------------- free memory

def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
    except (OSError, ValueError):
        pass
    return 0


def ram_available() -> int | None:
    """Bytes of RAM this process can still take: MemAvailable, or less when a cgroup limit is nearer
    (a container's limit; its reclaimable file cache counts as free). None where neither is readable."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage, stat, cache in (("memory.max", "memory.current", "memory.stat", "inactive_file"),
                                      ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
                                       "memory/memory.stat", "total_inactive_file")):
        top, used = _read_int(f"/sys/fs/cgroup/{limit}"), _read_int(f"/sys/fs/cgroup/{usage}")
        if top is not None and used is not None and top < 1 << 60:  # "max" or a huge number: no limit
            found.append(max(0, top - used + _stat_value(f"/sys/fs/cgroup/{stat}", cache)))
    return min(found) if found else None


def available(device: torch.device) -> int | None:
    """Free bytes on `device` (its RAM for the CPU), None when it cannot be told."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type == "cpu":
        return ram_available()
    return None  # mps: unified memory, no reliable free figure


def where(device: torch.device) -> str:
    return "in RAM" if device.type == "cpu" else f"on {device}"


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

def check_dataset(cfg) -> None:
    """Refuse a generated dataset (a builder taking n_samples) that cannot fit in RAM, before making it."""
    import inspect

    import numpy as np

    from .registry import DATASETS

    entry = DATASETS.get(cfg["data.name"])
    params = inspect.signature(entry.fn).parameters
    n = cfg["data.n_samples"]
    if "n_samples" not in params or n <= PROBE_SAMPLES:
        return
    free = ram_available()
    if free is None:
        return
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
            probe = entry.fn(**kwargs)
    except Exception:  # a probe the builder refuses (its own checks run again, with the real options)
        return
    finally:
        np.random.set_state(state)
    per_sample = nbytes(probe) / PROBE_SAMPLES
    side = _image_side(probe)
    if size and side:
        per_sample *= (size / side) ** 2
    need = per_sample * n * DATA_COPIES
    if need > free:
        what = f"{n:,} samples" + (f" of {size}x{size} pixels" if size else "")
        raise ConfigError(f"dataset {cfg['data.name']!r} with {what} needs at least {gb(need)} in RAM to generate "
                          f"and split ({gb(per_sample)} a sample); {gb(free)} are free: use a smaller data.n_samples"
                          + (" or data.image_size" if "image_size" in params else ""))


def _image_side(container) -> int | None:
    """The width of a probe's images (the first 3-D or 4-D tensor found), None for tables."""
    for f in getattr(container, "__dataclass_fields__", ()):
        v = getattr(container, f)
        if isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            v = v[0]
        if isinstance(v, torch.Tensor) and v.dim() in (3, 4):
            return int(v.shape[-1])
    return None


def check_bytes(need: float, what: str, advice: str) -> None:
    """Refuse `what` (e.g. "decoding 120,000 images of 3x512x512") when `need` bytes exceed the free RAM."""
    free = ram_available()
    if free is not None and need > free:
        raise ConfigError(f"{what} needs about {gb(need)} in RAM; {gb(free)} are free: {advice}")


# ----------------------------------------------------------------------------- the model's weights

def check_model(cfg, in_shape, num_outputs: int, output_kind: str, device: torch.device) -> None:
    """Refuse a model whose weights alone cannot fit on `device`, before one weight is allocated: the
    model is built on the meta device first (shapes only; its builder's notes are not repeated)."""
    if cfg["model.pretrained"]:
        return  # torchvision's fixed architectures; loading weights into a meta model would only warn
    free = available(device)
    if free is None:
        return
    import contextlib
    import io
    import warnings

    from .models import build_model

    try:
        with torch.device("meta"), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(cfg, in_shape, num_outputs, output_kind)
    except Exception:  # a builder that needs real tensors (or refuses the config: it says so again, for real)
        return
    count = sum(t.numel() for t in model.parameters())
    need = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if need > free:
        raise ConfigError(f"model {cfg['model.name']} has {count:,} parameters: its weights alone need about "
                          f"{gb(need)} {where(device)}; {gb(free)} are free: use a smaller model")


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


def check_step(cfg, setup, world: int = 1) -> None:
    """Refuse a training step that cannot fit in its device's free memory (ConfigError with the estimate);
    note one that will be slow. Called before the loaders move the data to the device."""
    step = estimate_step(cfg, setup, world)
    if step is None:
        return
    free = available(step.device)
    if free is not None and step.need > free:
        ranked = sorted(step.parts.items(), key=lambda kv: -kv[1])
        detail = ", ".join(f"{k} {gb(v)}" for k, v in ranked if v >= 0.05 * step.need)
        raise ConfigError(f"{step.what} needs about {gb(step.need)} {where(step.device)} ({detail}); "
                          f"{gb(free)} are free: {step.advice[ranked[0][0]]}")
    if step.flops:
        _note_slow(step)


def _count(split) -> int:
    """Samples in a split: its inputs' first dimension, or its length (lists of images)."""
    x = split[0] if isinstance(split, (tuple, list)) and split else split
    return int(x.shape[0]) if isinstance(x, torch.Tensor) else len(x)


def _note_slow(step: Step) -> None:
    """A note when one step (forward and backward: about 3x the forward's FLOPs) will take long even at a
    good rate for the device: no timing is run, and the note errs towards silence."""
    device = step.device
    rate = FLOP_RATE.get(device.type, FLOP_RATE["cuda"]) * (torch.get_num_threads() if device.type == "cpu" else 1)
    step_s = step.flops / rate
    if step_s < SLOW_STEP_S:
        return
    took = (f"~{_duration(step_s)} per epoch" if step.full
            else f"~{_duration(step_s)} per step, {_duration(step_s * step.steps)} per epoch")
    note(f"{step.what} is about {_si(step.flops)}FLOP: it may take {took} or more on this {device.type}")


def _si(v: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if v >= scale:
            return f"{v / scale:.1f} {unit}"
    return f"{v:.0f} "


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"
