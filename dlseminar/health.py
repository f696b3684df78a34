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

In the same probe pass, the batch-norm lesson ("unnormalised / normalised"): the quantiles QUANTILES
of the pre-activations, pooled over the probe's samples, units and positions. In a net with batch
norm, for every BatchNorm layer its input (preact_raw: the conv or linear output) and its output
(preact_bn: what the activation sees, gamma * x_hat + beta with the running statistics of eval mode);
in a net without, the output of every convolution or linear layer but the last (preact_raw: the raw
pre-activations, free to drift as the weights below them change). A layer's values are subsampled to
SAMPLED at fixed positions (its own generator: no random number of the run's is drawn).

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
PROBE = 256  # samples in the probe batch (dead units, pre-activations)
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)  # of the pre-activations, per layer and epoch
SAMPLED = 1 << 16  # values of a layer the quantiles are taken from, at most
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@OBSERVERS.register("health")
def _health(setup, optimizer, main: bool, run_dir):
    """train.health: per-layer gradient norms, dead ReLUs, weight histograms, pre-activation quantiles (on every
    process; plots/bn.png on the main one)."""
    if not setup.cfg["train.health"]:
        return None
    return Health.for_setup(setup, optimizer, plots=main and setup.cfg["logging.plots"])


class Health(Observer):
    name = "health"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, probe: torch.Tensor | None,
                 plots: bool = False):
        self.weights = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
        self.probe, self.plots = probe, plots  # plots: draw plots/bn.png at the end
        self.relu_names: list[str] | None = None  # learnt from the first probe
        self.preact_names: list[str] | None = None
        self.batch_norm = any(isinstance(m, NORMS) for m in model.modules())
        self.epochs: list[dict] = []
        self._sum: torch.Tensor | None = None  # (L,) sum of per-step gradient norms this epoch
        self._steps = 0
        self._handle = optimizer.register_step_pre_hook(self._on_step)

    @classmethod
    def for_setup(cls, setup, optimizer, plots: bool = False) -> "Health":
        """A Health for an assemble.build() Setup: the probe is the first PROBE training samples, unshuffled."""
        cfg = setup.cfg
        probe = None
        if "train" in setup.data.splits:
            loader = setup.data.loader("train", PROBE, shuffle=False, seed=cfg["seed"], device=setup.device)
            batch = next(iter(loader), None)
            probe = None if batch is None else batch[0]
        return cls(setup.model, optimizer, probe, plots)

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
        dead, raw, bn = self.probe_stats(model)
        self.epochs.append({"epoch": epoch, "grad_norm": grad, "near_zero": near,
                            "near_zero_all": total_near / max(total, 1), "dead_relu": dead,
                            "weight_hist": hist, "preact_raw": raw, "preact_bn": bn})

    def probe_stats(self, model: nn.Module) -> tuple[list[float], list[list[float]], list[list[float]]]:
        """One pass of the probe in eval mode: the share of units of each ReLU call that are 0 for every
        probe sample, and the pre-activation quantiles (Preactivations: raw, after batch norm)."""
        if self.probe is None:
            return [], [], []
        pre = Preactivations(model, self.batch_norm)
        alive: list[torch.Tensor] = []
        names: list[str] = []

        def hook(name):
            def fn(module, inputs, out):
                if not isinstance(out, torch.Tensor) or out.ndim < 2:
                    return
                a = (out > 0).flatten(2).any(2) if out.ndim > 2 else out > 0  # (B, units): channels for maps
                alive.append(a.any(0))
                names.append(call_name(names, name))
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
            pre.remove()
            model.train(was_training)
        if self.relu_names is None:
            self.relu_names = names
        if self.preact_names is None:
            self.preact_names = pre.names
        return [1.0 - float(a.float().mean()) for a in alive], pre.raw, pre.bn

    # ---------------------------------------------------------------- checkpoints and summary
    def state_dict(self) -> dict:
        return {"epochs": self.epochs, "relu_names": self.relu_names, "preact_names": self.preact_names,
                "steps": self._steps, "sum": None if self._sum is None else self._sum.detach().cpu()}

    def load_state_dict(self, d: dict) -> None:
        self.epochs, self.relu_names = list(d["epochs"]), d.get("relu_names")
        self.preact_names = d.get("preact_names")  # absent in a checkpoint written before it was recorded
        self._steps = d.get("steps", 0)
        s = d.get("sum")
        self._sum = None if s is None else s.to(self.weights[0][1].device if self.weights else "cpu")

    def summarize(self, summary: RunSummary) -> None:
        summary.health = self.summary()

    def finish(self, run_dir, summary: RunSummary) -> None:
        """plots/bn.png: the pre-activation quantiles over the epochs (logging.plots, on the main process)."""
        from .viz.health import batch_norm

        if self.plots and summary.health and batch_norm(run_dir / "plots" / "bn.png", summary.health, summary):
            summary.plots = [*(summary.plots or []), "plots/bn.png"]

    def summary(self) -> dict:
        """Per-epoch lists for summary.json: {metric: {layer: [one value per epoch]}}."""
        layers = [n for n, _ in self.weights]
        relus = self.relu_names or []
        pres = self.preact_names or []
        per = lambda key, names: {n: [e[key][i] for e in self.epochs] for i, n in enumerate(names)}  # noqa: E731

        def per_or_none(key, names):  # None for the epochs a resumed run's checkpoint recorded without them
            return {n: [e[key][i] if len(e.get(key) or ()) > i else None for e in self.epochs]
                    for i, n in enumerate(names)}

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
            "preact_quantiles": list(QUANTILES), "preact_batch_norm": self.batch_norm, "preact_layers": pres,
            "preact_raw": per_or_none("preact_raw", pres),
            "preact_bn": per_or_none("preact_bn", pres if self.batch_norm else []),
        }


def call_name(names: list[str], name: str) -> str:
    """`name` for its first call in a forward pass, `name#2` for its second, ..."""
    calls = sum(1 for n in names if n == name or n.startswith(name + "#"))
    return name if calls == 0 else f"{name}#{calls + 1}"


class Preactivations:
    """Forward hooks that take the QUANTILES of the pre-activations of a model's chosen layers, for each
    forward pass until remove(): the input and output of every batch norm (batch_norm true), else the
    output of every convolution or linear layer but the last (the output layer's scores are no
    pre-activation). raw, bn: per layer call, the quantiles as a list of floats (bn stays empty
    without batch norm); names: the layers, as named in the model (`#2` for a second call)."""

    def __init__(self, model: nn.Module, batch_norm: bool):
        kinds = NORMS if batch_norm else WEIGHTED
        chosen = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]
        if not batch_norm:
            chosen = chosen[:-1]
        self.batch_norm = batch_norm
        self.names: list[str] = []
        self.raw: list[list[float]] = []
        self.bn: list[list[float]] = []
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in chosen]

    def _hook(self, name: str):
        def fn(module, inputs, out):
            x = inputs[0] if self.batch_norm else out
            if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor):
                return
            self.raw.append(quantiles(x))
            if self.batch_norm:
                self.bn.append(quantiles(out))
            self.names.append(call_name(self.names, name))
        return fn

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def quantiles(x: torch.Tensor) -> list[float]:
    """QUANTILES of all values of x (at most SAMPLED of them, at positions fixed by their count), 5 digits."""
    v = x.detach().flatten().float()
    if v.numel() > SAMPLED:  # torch.quantile sorts: a conv map of 256 samples would cost a sort of millions
        g = torch.Generator().manual_seed(v.numel())
        v = v[torch.randint(v.numel(), (SAMPLED,), generator=g).to(v.device)]
    if v.numel() == 0:
        return [math.nan] * len(QUANTILES)
    q = torch.quantile(v, torch.tensor(QUANTILES, device=v.device))
    return [float(f"{c:.5g}") for c in q.tolist()]
