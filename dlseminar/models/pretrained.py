"""Glue shared by the torchvision-based image models: image shape, stem choice, input-size
check, fresh first convs and ImageNet weights read from the local torch hub cache only.

Nothing here downloads: `model.pretrained: true` works only when torchvision's weight file
is already in `torch.hub.get_dir()/checkpoints/` (where torchvision itself caches it).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import ConfigError

STEMS = ("auto", "imagenet", "small")
AUTO_IMAGENET_FROM = 128  # stem 'auto' keeps the ImageNet stem from this many pixels (min of H, W)


def image_shape(in_shape, name: str) -> tuple[int, int, int]:
    """(C, H, W) or a ConfigError naming the model (e.g. an image model on a tabular dataset)."""
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"model {name!r} needs image inputs (C, H, W); this dataset gives inputs of shape {shape}")
    return shape  # type: ignore[return-value]


def resolve_stem(stem: str, in_shape) -> str:
    """'imagenet' or 'small'; 'auto' picks 'imagenet' when min(H, W) >= 128."""
    if stem not in STEMS:
        raise ConfigError(f"model.stem {stem!r} is not one of {', '.join(STEMS)}")
    if stem == "auto":
        return "imagenet" if min(in_shape[1:]) >= AUTO_IMAGENET_FROM else "small"
    return stem


def new_conv(like: nn.Conv2d, in_channels: int, kernel_size=None, stride=None, padding=None) -> nn.Conv2d:
    """A fresh Conv2d like `like` with another input width (and optionally another geometry).

    The caller re-initialises it the way its torchvision family does.
    """
    return nn.Conv2d(in_channels, like.out_channels,
                     kernel_size=like.kernel_size if kernel_size is None else kernel_size,
                     stride=like.stride if stride is None else stride,
                     padding=like.padding if padding is None else padding,
                     bias=like.bias is not None)


def pools_that_fit(size: int, n_pools: int, kernel: int = 2, stride: int = 2) -> int:
    """How many of `n_pools` (kernel, stride) max-pools an input of `size` px survives (>= 1 px left)."""
    k = 0
    while k < n_pools and size >= kernel:
        size = (size - kernel) // stride + 1
        k += 1
    return k


def drop_early_pools(features: nn.Sequential, in_size: int, kernel: int, stride: int) -> None:
    """Replace the first max-pools of `features` by Identity until the rest fit `in_size`.

    Dropping the EARLY pools (not the late ones) keeps every later stage at >= 1 px and gives
    small images more resolution where the filters are; Identity keeps the layer indices, so
    torchvision's weight names (features.N.weight) still line up.
    """
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    n_drop = len(pools) - pools_that_fit(in_size, len(pools), kernel, stride)
    for i in pools[:n_drop]:
        features[i] = nn.Identity()


def _runs_on(model: nn.Module, shape) -> bool:
    """True when a (1, *shape) input gets through `model`; shapes only (meta device, no compute)."""
    from torch.func import functional_call

    meta = {k: torch.empty_like(v, device="meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(model, meta, (torch.empty(1, *shape, device="meta"),))
        return True
    except RuntimeError:  # "Output size is too small", "Kernel size can't be greater than input"
        return False
    finally:
        model.train(was_training)


def check_input(model: nn.Module, in_shape, name: str, stem: str) -> None:
    """ConfigError (with the smallest square size that works) when in_shape is too small for the model."""
    c, h, w = in_shape
    if _runs_on(model, in_shape):
        return
    lo, hi = min(h, w), 1024  # lo fails; find the smallest square size that runs
    if not _runs_on(model, (c, hi, hi)):
        raise ConfigError(f"input {c}x{h}x{w} does not fit model {name!r} with model.stem={stem}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs_on(model, (c, mid, mid)) else (mid, hi)
    hint = "; use model.stem=small (or auto)" if stem == "imagenet" else ""
    raise ConfigError(f"model {name!r} with model.stem={stem} needs inputs of at least {hi}x{hi} px, "
                      f"got {c}x{h}x{w}{hint}")


# --- pretrained weights from the local cache ------------------------------------------------

def weights_path(arch: str) -> Path:
    """Where torchvision caches `arch`'s default ImageNet weights (the file may be absent)."""
    import torchvision

    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_pretrained(model: nn.Module, arch: str, first_conv: str, **ref_kwargs) -> None:
    """Copy torchvision's ImageNet weights for `arch` from the local cache into `model`, in place.

    The file must hold exactly the state of `torchvision.models.<arch>(**ref_kwargs)` (checked
    against a meta-device copy). Each tensor is copied where `model` has the same name and shape.
    Where `model` differs it keeps its fresh init: the classifier head when num_outputs != 1000,
    the first conv of the 'small' stem, the small classifiers of VGG/AlexNet. Only `first_conv`
    (a weight name) is adapted when only its input channels differ: the RGB filters are averaged
    and scaled by 3/C, so an image whose C channels are equal gives the same response as the
    grey RGB image did. Never downloads.
    """
    import torchvision

    path = weights_path(arch)
    if not path.is_file():
        raise ConfigError(f"pretrained weights for {arch} are not in the local cache ({path}); "
                          f"place the file there or set model.pretrained=false")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, not a tensor dict, ...
        raise ConfigError(f"cannot read pretrained weights {path}: {str(e).splitlines()[0]}") from None
    with torch.device("meta"):
        ref = torchvision.models.get_model(arch, weights=None, **ref_kwargs).state_dict()
    def shapes(sd):  # BatchNorm's num_batches_tracked is missing from torchvision's older files
        return {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    if not isinstance(state, dict) or shapes(state) != shapes(ref):
        raise ConfigError(f"{path} does not hold torchvision's {arch} weights; delete it or set model.pretrained=false")
    own = model.state_dict()  # tensors share storage with the model's parameters and buffers
    with torch.no_grad():
        for key, value in state.items():
            mine = own.get(key)
            if mine is None:
                continue  # e.g. googlenet's aux heads with model.aux=false
            if mine.shape == value.shape:
                mine.copy_(value)
            elif key == first_conv and mine.shape[0] == value.shape[0] and mine.shape[2:] == value.shape[2:]:
                c = mine.shape[1]  # (out, 3, k, k) -> (out, C, k, k)
                mine.copy_(value.mean(1, keepdim=True).expand_as(mine) * (3 / c))
