"""Fine-tuning: start from another run's weights, train the head first, then everything.

model.init_from copies each layer of a dlseminar checkpoint whose names and shapes match the model
(a head for another number of classes stays as built) and says in one note what was loaded and
what is new; model.pretrained (torchvision's ImageNet weights, loaded by the model's builder) gets
the same note. model.freeze stops the backbone (or the first N stages) from training,
train.unfreeze_at lets every layer train from that epoch on (fastai's fine_tune), and
optim.backbone_lr_mult gives the layers before the head a smaller lr (param_groups).

No model file declares its head or stages; they are read from its structure (split):
- head: the top-level children named in HEADS (torchvision's fc, classifier and googlenet's aux
  heads, unet's head, the detectors' rpn and roi_heads); a model with none of them (a Sequential:
  cnn, lenet5, mlp) has its last child with weights as its head.
- stages: the other top-level children in order. Each child with weights starts one; a
  normalisation layer or a child without weights (ReLU, pool) joins the stage before it, so
  resnet's stages are its stem (conv1, bn1, relu, maxpool) and layer1 .. layer4. When one child
  holds every weight before the head (vgg's and alexnet's features, a detector's backbone), its
  children are the stages.

Frozen means requires_grad False: the optimizer holds every parameter from the start and skips one
without a gradient (weight decay and momentum included), so unfreezing only flips the flag. Batch
norm inside a frozen part is kept in eval mode, so its running statistics stay those it was loaded
with and a frozen part is bit-identical after training. Which parts are frozen is a function of the
epoch only: the Trainer calls apply() at each epoch's start (after model.train()), and a resume
recomputes it.
"""
from __future__ import annotations

import torch
from torch import nn

from .console import note
from .engine import checkpoint as ckpt
from .engine import distributed
from .errors import CheckpointError, ConfigError

HEADS = ("fc", "classifier", "head", "aux1", "aux2", "rpn", "roi_heads")
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
SHOWN = 3  # layer names a note lists

Named = tuple[str, nn.Module]


def _off(freeze: str) -> bool:
    """model.freeze none or 0: nothing frozen."""
    return freeze == "none" or (freeze != "backbone" and int(freeze) == 0)


def _weighted(m: nn.Module) -> bool:
    return next(m.parameters(), None) is not None


def split(model: nn.Module) -> tuple[list[list[Named]], list[Named]]:
    """(stages, head) of `model`: the stages in order, each a list of (name, module); the head's modules."""
    children = list(model.named_children())
    head = [(n, m) for n, m in children if n in HEADS and _weighted(m)]
    if not head:  # a Sequential: the last layer with weights produces the outputs
        head = [c for c in children if _weighted(c[1])][-1:]
    body = [(n, m) for n, m in children if all(m is not h for _, h in head)]
    weighted = [(n, m) for n, m in body if _weighted(m)]
    if len(weighted) == 1 and len(list(weighted[0][1].children())) > 1:  # vgg's features, a detector's backbone
        outer, inner = weighted[0]
        body = [(f"{outer}.{n}", m) for n, m in inner.named_children()]
    stages: list[list[Named]] = []
    pending: list[Named] = []  # weightless children before the first stage (an mlp's Flatten)
    for name, m in body:
        if _weighted(m) and not isinstance(m, NORMS):
            stages.append(pending + [(name, m)])
            pending = []
        elif stages:
            stages[-1].append((name, m))
        else:
            pending.append((name, m))
    return stages, head


def _stage_names(stage: list[Named]) -> str:
    return "+".join(n for n, m in stage if _weighted(m) or getattr(m, "running_mean", None) is not None)


def frozen_parts(model: nn.Module, freeze: str) -> list[Named]:
    """The modules model.freeze names (none, backbone or a number of stages); a ConfigError when it does not fit."""
    if _off(freeze):
        return []
    stages, head = split(model)
    n = len(stages) if freeze == "backbone" else int(freeze)
    heads = ", ".join(h for h, _ in head)
    if not stages:
        raise ConfigError(f"model.freeze={freeze}: this model has no layers before its head ({heads}): "
                          f"nothing to freeze")
    if n > len(stages):
        shown = ", ".join(_stage_names(s) for s in stages[:6]) + (", ..." if len(stages) > 6 else "")
        raise ConfigError(f"model.freeze={freeze}: this model has {len(stages)} stages before its head ({heads}): "
                          f"{shown}; use a number up to {len(stages)} or backbone")
    return [c for stage in stages[:n] for c in stage]


def apply(model: nn.Module, cfg, epoch: int) -> None:
    """Freeze model.freeze's parts for `epoch` (1-based) before train.unfreeze_at, let everything train from it.

    Called after model.train(): batch norm in a frozen part goes back to eval mode."""
    if _off(cfg["model.freeze"]):
        return
    at = cfg["train.unfreeze_at"]
    frozen = not at or epoch < at
    for _, part in frozen_parts(model, cfg["model.freeze"]):
        for p in part.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            for m in part.modules():
                if getattr(m, "running_mean", None) is not None:  # batch norm tracking running statistics
                    m.eval()


def prepare(model: nn.Module, cfg, fresh: bool) -> None:
    """After the model is built (assemble.build). `fresh`: no checkpoint's weights will replace these
    (a new run, lr-find), so model.init_from and model.freeze apply; a resume, eval or predict loads its
    own checkpoint, and its Trainer applies model.freeze at each epoch's start."""
    if not _off(cfg["model.freeze"]) and distributed.world_size() > 1:
        raise ConfigError("model.freeze is not supported with several processes (--devices, torchrun): "
                          "DistributedDataParallel fixes which weights train when it wraps the model")
    if not fresh:
        return
    if cfg["train.unfreeze_at"] and _off(cfg["model.freeze"]):
        raise ConfigError(f"train.unfreeze_at={cfg['train.unfreeze_at']} has nothing to unfreeze: "
                          f"model.freeze is {cfg['model.freeze']}; set model.freeze=backbone (or N)")
    if cfg["model.init_from"] is not None and cfg["model.pretrained"]:
        raise ConfigError("model.init_from and model.pretrained both give the starting weights; set one "
                          "(a checkpoint fine-tuned from ImageNet weights holds them already)")
    apply(model, cfg, 1)  # first: a model.freeze that does not fit is said before any weights are read
    if cfg["model.init_from"] is not None:
        init_from(model, cfg["model.init_from"])
    elif cfg["model.pretrained"]:
        pretrained_note(model, cfg["model.name"])


def init_from(model: nn.Module, path: str) -> None:
    """Copy every layer of the checkpoint at `path` whose names and shapes match into `model`; one note
    says which were loaded and which are new. A checkpoint that fits no layer is a ConfigError."""
    try:
        saved = ckpt.load(path)
    except CheckpointError as e:
        raise ConfigError(f"model.init_from: {e}") from None
    theirs, own = saved["model"], model.state_dict()  # own's tensors share storage with the model's
    loaded, new = compare(own, theirs)
    made = f"{saved['config'].get('model', {}).get('name', '?')} on {saved['data_info']['name']}"
    if not loaded:
        names = ", ".join(list(_layers(theirs))[:SHOWN])
        raise ConfigError(f"model.init_from {path}: none of this model's {len(new)} layers matches the checkpoint's "
                          f"in name and shape (it holds {made}: {names}, ...); give a checkpoint of the same "
                          f"architecture")
    layers = _layers(own)
    with torch.no_grad():
        for layer in loaded:
            for key in layers[layer]:
                if key in theirs:  # a missing num_batches_tracked keeps its count
                    own[key].copy_(theirs[key])
    note(f"model.init_from {path} ({made}): {_said(loaded, new)}")


def pretrained_note(model: nn.Module, arch: str) -> None:
    """The note init_from gives, for the torchvision weights model.pretrained loaded (models/pretrained.py)
    from the local cache: read again for their shapes only (memory-mapped, no copy)."""
    import torchvision

    from .models.pretrained import weights_path

    if arch not in torchvision.models.list_models():  # a detector: its backbone's weights
        return
    path = weights_path(arch)
    try:
        theirs = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # torchvision's older files predate the zip format mmap needs
        theirs = torch.load(path, map_location="cpu", weights_only=True)
    loaded, new = compare(model.state_dict(), theirs, adapted=True)
    note(f"model.pretrained: torchvision's {arch} ImageNet weights: {_said(loaded, new)}")


def compare(own: dict, theirs: dict, adapted: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """(layers of `own` that `theirs` holds with the same names and shapes, [(new layer, why)]).

    A layer (a module's own tensors) is loaded whole or not at all; a missing num_batches_tracked
    (torchvision's older files) does not count. adapted: a conv weight that differs only in its input
    channels counts as loaded (models/pretrained.py averages the RGB filters into it)."""
    loaded, new = [], []
    for layer, keys in _layers(own).items():
        why = None
        for k in keys:
            mine, other = own[k], theirs.get(k)
            if other is None:
                why = why or (None if k.endswith("num_batches_tracked") else "not in the checkpoint")
            elif mine.shape != other.shape and not (adapted and mine.dim() == 4 and mine.shape[0] == other.shape[0]
                                                     and mine.shape[2:] == other.shape[2:]):
                why = why or f"{tuple(mine.shape)} here, {tuple(other.shape)} in the checkpoint"
        if why:
            new.append((layer, why))
        else:
            loaded.append(layer)
    return loaded, new


def _layers(state: dict) -> dict[str, list[str]]:
    """Tensor names grouped by the module that holds them ('fc': ['fc.weight', 'fc.bias']), in order."""
    out: dict[str, list[str]] = {}
    for key in state:
        out.setdefault(key.rpartition(".")[0] or "(model)", []).append(key)
    return out


def _said(loaded: list[str], new: list[tuple[str, str]]) -> str:
    """'2 of 3 layers loaded (0, 3); 1 new, left as built (7: (4, 256) here, (8, 256) in the checkpoint)'."""
    total = len(loaded) + len(new)
    more = lambda items: ", ..." if len(items) > SHOWN else ""  # noqa: E731
    text = f"{len(loaded)} of {total} layers loaded ({', '.join(loaded[:SHOWN])}{more(loaded)})"
    if new:
        shown = ", ".join(f"{n}: {why}" for n, why in new[:SHOWN])
        text += f"; {len(new)} new, left as built ({shown}{more(new)})"
    return text


def param_groups(model: nn.Module, cfg):
    """The optimizer's parameters: all of them, or with optim.backbone_lr_mult != 1 two groups, the head's
    at optim.lr first (the lr metrics.csv shows) and every other parameter at optim.lr * backbone_lr_mult.
    Frozen parameters are included: they train once unfrozen."""
    mult = cfg["optim.backbone_lr_mult"]
    if mult == 1.0:
        return model.parameters()
    _, head = split(model)
    ids = {id(p) for _, m in head for p in m.parameters()}
    params = list(model.parameters())
    backbone = [p for p in params if id(p) not in ids]
    if not backbone:
        raise ConfigError(f"optim.backbone_lr_mult={mult}: this model has no layers before its head "
                          f"({', '.join(n for n, _ in head)}); leave it at 1")
    return [{"params": [p for p in params if id(p) in ids]},
            {"params": backbone, "lr": cfg["optim.lr"] * mult}]
