"""Training health (`train.health: true`): the vanishing-gradient and regularisation lessons, measured.

Every epoch, for each weight matrix or kernel (parameters with 2+ dimensions; biases and norm
scales are left out, as in the L1/L2 penalties):

- grad_norm: the L2 norm of its gradient, averaged over the epoch's optimizer steps. Taken in an
  optimizer step pre-hook, i.e. after clipping (train.grad_clip) and gradient accumulation, and
  summed on the device, so a step costs one small kernel per layer and no host sync;
- near_zero: the share of its entries with |w| < 1e-3 (L1 drives weights to exactly zero, L2
  only makes them small), and near_zero_all over all weights together;
- weight_hist: a histogram of its entries over [-max|w|, max|w|] (20 bins).

and for each nn.ReLU module, dead_relu: the share of its units (features, or channels of a conv
map) that output 0 for every sample of a fixed probe batch (the first 256 training samples, eval
mode: no dropout, batch norm from its running statistics, no random numbers drawn, so a run
with health on trains exactly as one without). A ReLU module applied twice in a forward pass
(torchvision's ResNet blocks) is reported per call: `layer1.0.relu`, `layer1.0.relu#2`.

Health is an observer (observers.py): the Trainer calls epoch_end after each epoch's validation
and stores state_dict() in last.pt, so a resumed run keeps the earlier epochs. Nothing of this
runs when train.health is off.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from .observers import OBSERVERS, Observer

if TYPE_CHECKING:  # only named in annotations: summary.py loads the tasks, which import the observers
    from .summary import RunSummary

THRESHOLD = 1e-3  # |w| below this counts as (near) zero
BINS = 20
PROBE = 256  # samples in the dead-unit probe batch


@OBSERVERS.register("health")
def _health(setup, optimizer, main: bool, run_dir):
    """train.health: per-layer gradient norms, dead ReLUs, weight histograms (on every process)."""
    return Health.for_setup(setup, optimizer) if setup.cfg["train.health"] else None


class Health(Observer):
    name = "health"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, probe: torch.Tensor | None):
        self.weights = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
        self.probe = probe
        self.relu_names: list[str] | None = None  # learnt from the first probe
        self.epochs: list[dict] = []
        self._sum: torch.Tensor | None = None  # (L,) sum of per-step gradient norms this epoch
        self._steps = 0
        self._handle = optimizer.register_step_pre_hook(self._on_step)

    @classmethod
    def for_setup(cls, setup, optimizer) -> "Health":
        """A Health for an assemble.build() Setup: the probe is the first PROBE training samples, unshuffled."""
        cfg = setup.cfg
        probe = None
        if "train" in setup.data.splits:
            loader = setup.data.loader("train", PROBE, shuffle=False, seed=cfg["seed"], device=setup.device)
            batch = next(iter(loader), None)
            probe = None if batch is None else batch[0]
        return cls(setup.model, optimizer, probe)

    def close(self) -> None:
        self._handle.remove()

    # ---------------------------------------------------------------- per step (optimizer pre-hook)
    def _on_step(self, optimizer, args, kwargs) -> None:
        with torch.no_grad():
            norms = torch.stack([p.grad.detach().float().norm() if p.grad is not None
                                 else torch.zeros((), device=p.device) for _, p in self.weights])
        self._sum = norms if self._sum is None else self._sum + norms
        self._steps += 1

    # ---------------------------------------------------------------- per epoch (Trainer observer hook)
    def epoch_end(self, epoch: int, model: nn.Module, row: dict) -> None:
        if self._steps:
            grad = (self._sum / self._steps).tolist()
        else:  # every step was skipped (non-finite) or none ran
            grad = [math.nan] * len(self.weights)
        self._sum, self._steps = None, 0
        near, hist = [], []
        total_near = total = 0
        with torch.no_grad():
            for _, p in self.weights:
                w = p.detach().float()
                small = int((w.abs() < THRESHOLD).sum())
                near.append(small / w.numel())
                total_near, total = total_near + small, total + w.numel()
                m = float(w.abs().max()) if w.numel() else 0.0
                counts = torch.histc(w.flatten().cpu(), BINS, -m, m) if m > 0 and math.isfinite(m) else torch.zeros(BINS)
                hist.append({"max": m, "counts": [int(c) for c in counts.tolist()]})
        self.epochs.append({"epoch": epoch, "grad_norm": grad, "near_zero": near,
                            "near_zero_all": total_near / max(total, 1), "dead_relu": self.dead_units(model),
                            "weight_hist": hist})

    def dead_units(self, model: nn.Module) -> list[float]:
        """Share of units of each ReLU call that are 0 for every probe sample."""
        if self.probe is None:
            return []
        alive: list[torch.Tensor] = []
        names: list[str] = []

        def hook(name):
            def fn(module, inputs, out):
                if not isinstance(out, torch.Tensor) or out.ndim < 2:
                    return
                a = (out > 0).flatten(2).any(2) if out.ndim > 2 else out > 0  # (B, units): channels for maps
                alive.append(a.any(0))
                calls = sum(1 for n in names if n == name or n.startswith(name + "#"))
                names.append(name if calls == 0 else f"{name}#{calls + 1}")
            return fn

        handles = [m.register_forward_hook(hook(n or "relu")) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
        was_training = model.training
        try:
            model.eval()
            with torch.inference_mode():
                model(self.probe)
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        if self.relu_names is None:
            self.relu_names = names
        return [1.0 - float(a.float().mean()) for a in alive]

    # ---------------------------------------------------------------- checkpoints and summary
    def state_dict(self) -> dict:
        return {"epochs": self.epochs, "relu_names": self.relu_names, "steps": self._steps,
                "sum": None if self._sum is None else self._sum.detach().cpu()}

    def load_state_dict(self, d: dict) -> None:
        self.epochs, self.relu_names = list(d["epochs"]), d.get("relu_names")
        self._steps = d.get("steps", 0)
        s = d.get("sum")
        self._sum = None if s is None else s.to(self.weights[0][1].device if self.weights else "cpu")

    def summarize(self, summary: RunSummary) -> None:
        summary.health = self.summary()

    def summary(self) -> dict:
        """Per-epoch lists for summary.json: {metric: {layer: [one value per epoch]}}."""
        layers = [n for n, _ in self.weights]
        relus = self.relu_names or []
        per = lambda key, names: {n: [e[key][i] for e in self.epochs] for i, n in enumerate(names)}  # noqa: E731
        grad = per("grad_norm", layers)
        ratio = []
        if len(layers) >= 2:
            ratio = [g0 / g1 if g1 else math.nan for g0, g1 in zip(grad[layers[0]], grad[layers[-1]])]
        return {
            "threshold": THRESHOLD, "probe_samples": 0 if self.probe is None else len(self.probe),
            "epochs": [e["epoch"] for e in self.epochs], "layers": layers, "relu_layers": relus,
            "grad_norm": grad, "first_to_last_grad": ratio,
            "near_zero": per("near_zero", layers), "near_zero_all": [e["near_zero_all"] for e in self.epochs],
            "dead_relu": per("dead_relu", relus), "weight_hist": per("weight_hist", layers),
        }
