"""Mixed precision (train.precision): autocast for bf16 and fp16, a GradScaler for fp16.

32 changes nothing: no autocast, no scaler, not one extra operation per step.
bf16 keeps float32's exponent range, so it needs no loss scaling; it runs on CUDA (Ampere and
later natively) and on CPUs, where it is fast only with native bf16 instructions (AVX512-BF16,
AMX, Arm BF16) and otherwise emulated: a warning says so. fp16 has a small range: the loss is
multiplied by a running scale before backward (torch.amp.GradScaler) and a step whose scaled
gradients overflowed is skipped by the scaler while it lowers the scale. Those skips are
expected in the first steps and are not a divergence (train.on_nan does not count them).
"""
from __future__ import annotations

import torch

from ..console import note
from ..errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (else PyTorch emulates it, slowly)."""
    checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        if any(f is not None and f() for f in checks):
            return True
    except Exception:  # a private helper changed: fall back to the kernel's flags
        pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})  # x86, x86 AMX, aarch64


def autocast_args(precision: str, device: torch.device) -> tuple[str, torch.dtype] | None:
    """(device_type, dtype) for torch.autocast, or None for full precision."""
    if precision == "32":
        return None
    return device.type, DTYPES[precision]


def check(precision: str, device: torch.device, quiet: bool = False) -> None:
    """Refuse what cannot run; warn about what runs slowly (bf16 without hardware support, fp16 on a CPU)."""
    if precision == "32":
        return
    if device.type not in ("cuda", "cpu", "mps"):
        raise ConfigError(f"train.precision {precision} is not supported on {device.type}; use 32")
    if quiet:
        return
    if device.type == "cpu" and precision == "bf16" and not cpu_has_native_bf16():
        note("train.precision bf16: this CPU has no native bf16 instructions (AVX512-BF16/AMX); "
             "PyTorch emulates them and training is likely slower than with 32")
    if device.type == "cpu" and precision == "16":
        note("train.precision 16 on the CPU: fp16 is emulated there and rarely faster; bf16 is the CPU's half precision")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision bf16: this GPU does not support bf16; use 16 (fp16 with loss scaling) or 32")


def make_scaler(precision: str, device: torch.device):
    """A GradScaler for fp16, else None."""
    if precision != "16":
        return None
    try:
        return torch.amp.GradScaler(device.type)
    except (RuntimeError, ValueError, AttributeError) as e:
        raise ConfigError(f"train.precision 16 needs a gradient scaler, which PyTorch does not offer on "
                          f"{device.type} here ({str(e).splitlines()[0][:80]}); use bf16 or 32") from None
