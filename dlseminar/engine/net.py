"""The model as the Trainer's steps call it: channels-last, DistributedDataParallel, torch.compile.

The plain module stays what checkpoints hold; its parameters stay the same objects (the
optimizer holds them), whatever wraps them here.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from . import distributed


def prepare(model: torch.nn.Module, cfg, device, dist: distributed.Dist | None):
    """(what the training steps call, the DDP wrapper or None) for train.channels_last, DDP and train.compile."""
    net, ddp = model, None
    if cfg["train.channels_last"]:
        model.to(memory_format=torch.channels_last)  # 4-D conv weights; convolutions then keep NHWC activations
        model.register_forward_pre_hook(nhwc_inputs)  # and the images arrive NHWC (the batch itself is not read)
    if dist is not None:
        net = ddp = distributed.wrap(model, device, cfg["train.sync_batchnorm"])
        if dist.rank:  # its own dropout masks; rank 0 keeps the stream a checkpoint stores
            torch.manual_seed(distributed.rank_seed(cfg["seed"], dist.rank))
    if cfg["train.compile"]:
        net = torch.compile(net)
    return net, ddp


def nhwc_inputs(module, args):
    """Forward pre-hook of train.channels_last: 4-D tensor inputs (B, C, H, W) in channels-last layout."""
    return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.ndim == 4 else a
                 for a in args)


def compile_error(e: BaseException) -> bool:
    """An error raised by torch.compile's machinery (dynamo, inductor, a missing compiler), not by the model."""
    return any(c.__module__.startswith(("torch._dynamo", "torch._inductor")) for c in type(e).__mro__)


def compile_failed(e: BaseException) -> ConfigError:
    """The one-line user error for a train.compile failure."""
    text = str(e).strip()
    first = (text.splitlines()[0] if text else type(e).__name__)[:200]
    return ConfigError(f"train.compile failed ({type(e).__name__}: {first}); train without it (train.compile: false)")
