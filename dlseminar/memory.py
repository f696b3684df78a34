"""What a run will need, estimated before it is spent: refuse what cannot fit, say what will be slow.

Checks, each a few milliseconds for a small run, each before what it guards is allocated:

- check_dataset(cfg), before a generated dataset (one with data.n_samples) is made: its bytes a
  sample, from a probe (footprint.sample_bytes), times data.n_samples and the copies that
  generating and splitting make, against the free RAM;
- check_bytes(...), for a reader that knows its decoded size up front (folder);
- keep_in_memory(...), for a reader of image files (data.in_memory): decode the whole set into RAM,
  or stream it from its files when auto finds it above RAM_SHARE of the free RAM (and a note saying so);
- check_model(...), before the model is built: its weights, counted on a copy built on the meta
  device (footprint.model_weights);
- check_step(cfg, setup), before the first training step: the gradients, the optimizer's state and
  the activations kept for backward (footprint.estimate_step); on a GPU the dataset, which the
  loaders move there whole, counts too. A step whose multiply-adds would take more than
  SLOW_STEP_S even at a good rate gets a note.

Free memory: /proc/meminfo MemAvailable within the cgroup's limit, or torch.cuda.mem_get_info.
What cannot fit stops with one ConfigError line holding the estimate. A model whose forward does
not run on the meta device (a detector's lists of images) is checked without its activations.
"""
from __future__ import annotations

import torch

from .console import note
from .errors import ConfigError
from .footprint import DATA_COPIES, PROBE_SAMPLES, Step, estimate_step, model_weights, sample_bytes

GB = 1e9
SLOW_STEP_S = 10.0  # a step estimated longer than this gets a note
RAM_SHARE = 0.5  # data.in_memory auto: decoded images may take this share of the free RAM (the rest: model, steps)
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


# ----------------------------------------------------------------------------- the dataset

def check_dataset(cfg) -> None:
    """Refuse a generated dataset (a builder taking n_samples) that cannot fit in RAM, before making it."""
    import inspect

    from .registry import DATASETS

    entry = DATASETS.get(cfg["data.name"])
    params = inspect.signature(entry.fn).parameters
    n = cfg["data.n_samples"]
    if "n_samples" not in params or n <= PROBE_SAMPLES:
        return
    free = ram_available()
    if free is None:
        return
    per_sample = sample_bytes(cfg, entry.fn)
    if per_sample is None:
        return
    size = cfg["data.image_size"] if "image_size" in params else None
    need = per_sample * n * DATA_COPIES
    if need > free:
        what = f"{n:,} samples" + (f" of {size}x{size} pixels" if size else "")
        raise ConfigError(f"dataset {cfg['data.name']!r} with {what} needs at least {gb(need)} in RAM to generate "
                          f"and split ({gb(per_sample)} a sample); {gb(free)} are free: use a smaller data.n_samples"
                          + (" or data.image_size" if "image_size" in params else ""))


def keep_in_memory(choice: str, estimate, what: str, workers: int) -> tuple[bool, str | None]:
    """data.in_memory for a reader of image files: (True to decode every image into RAM once, False to
    stream them, decoded per batch by `workers` processes; the note that says which, or None). auto
    compares `estimate()`, the bytes the decoded set and its split copies take, with RAM_SHARE of the
    free RAM; where the free RAM cannot be read it keeps the set in memory, as before streaming existed.
    The reader says the note once its files are read: a file that stops the run is then its only line."""
    if choice != "auto":
        return choice == "true", None
    free = ram_available()
    if free is None:
        return True, None
    need = estimate()
    share = f"{RAM_SHARE:.0%} of the {gb(free)} of free RAM"
    if need <= RAM_SHARE * free:
        return True, f"{what} take about {gb(need)} decoded, within {share}: decoded into memory (data.in_memory: auto)"
    from .data.files import cpus

    workers = min(workers, cpus())
    by = f"{workers} worker process{'es' if workers != 1 else ''}" if workers else "the training process"
    return False, (f"{what} take about {gb(need)} decoded, more than {share}: streamed from the files, decoded "
                   f"per batch by {by} (data.in_memory: auto)")


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
    counted = model_weights(cfg, in_shape, num_outputs, output_kind)
    if counted is None:
        return
    count, need = counted
    if need > free:
        raise ConfigError(f"model {cfg['model.name']} has {count:,} parameters: its weights alone need about "
                          f"{gb(need)} {where(device)}; {gb(free)} are free: use a smaller model")


# ----------------------------------------------------------------------------- one training step

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
