"""`dlsem surface`: the loss as a contour map with the optimizer's path on it.

- A model that trains exactly two weights (a perceptron with one input and its bias; the slides' plane
  with w0 held by fix=["linear.bias=0"]): the exact loss over them on the whole training split.
- Any other network: a slice theta* + a*d1 + b*d2 through the trained weights theta* (Li et al. 2018),
  the loss on the first SUBSET training samples. directions="pca", the paper's trajectory plot: d1, d2 are
  the two main directions (uncentred PCA) of the recorded weights' deviations from theta*; "random", its
  landscape plot: two filter-normalised Gaussian directions, to which a path is nearly orthogonal. With
  several paths theta* is the end of the one with the lowest final loss; the PCA takes all that did not diverge.

Each path is a loop of its own with the Trainer's pieces: task.training_step plus the L1/L2 penalty,
build_optimizer, the lr schedule (plateau never lowers it: no validation), grad clipping, train.epochs of
shuffled batches; not accumulation, mixed precision or early stopping. All paths start from the same
weights and see the same batches. The map is that objective in eval mode (no dropout; batch norm with its
running statistics), under torch.no_grad.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from . import io
from .config import Config, check_known, parse_set
from .engine.penalty import penalty_weights, plain_step, weight_penalty
from .errors import ConfigError
from .registry import OPTIMIZERS, SCHEDULES, suggest

EXACT_RESOLUTION, SLICE_RESOLUTION = 41, 21  # grid points per axis (an exact map is cheap: finer contours)
SUBSET = 1024  # training samples a network's slice is evaluated on
MAX_PATHS = 8  # overlaid paths on one map (more are unreadable)
DIVERGE = 100.0  # a path stops once a step's loss exceeds this many times its first
SNAPSHOT_BYTES = 256 * 2**20  # recorded weights of all paths together
MAX_SNAPSHOTS = 400  # per path of a network (the PCA's cost grows with their square)
GRID_KEYS = ("train.batch_size", "train.epochs", "train.grad_clip")  # and every optim.* and sched.* key
DIRECTIONS = ("pca", "random")
ZIGZAG = 4  # moves in a row that each turn back: an oscillating path


@dataclass
class Trajectory:
    label: str
    settings: dict[str, str]
    points: torch.Tensor  # (n, P) trained weights: the start, then after every `every` steps, and the last
    steps: int  # optimizer steps taken
    every: int
    stopped: bool  # a step's loss exceeded DIVERGE x the first, or was not finite
    initial_loss: float = math.nan
    final_loss: float = math.nan
    status: str = ""  # converged | oscillating | still falling | diverged (see verdict)
    xy: list[list[float]] = field(default_factory=list)  # the points on the map


def grid_members(cfg: Config, grids: list[str]) -> list[tuple[str, dict[str, str], Config]]:
    """(label, settings, config) per grid point; only keys that leave the map itself unchanged may vary."""
    from .sweepgrid import parse_grid

    for item in grids:
        key, eq, _ = (part.strip() for part in item.partition("="))
        if not eq or not key:
            raise ConfigError(f"--grid expects key=value1,value2,... (got {item!r})")
        check_known([key], "--grid")
        if not (key.startswith(("optim.", "sched.")) or key in GRID_KEYS):
            raise ConfigError(f"--grid {key} would change the surface itself; the paths on one map may differ "
                              f"only in optim.*, sched.*, {', '.join(GRID_KEYS)}")
    if not grids:
        return [(f"{cfg['optim.name']} lr={cfg['optim.lr']:g}", {}, cfg)]
    grid = parse_grid(grids)
    if math.prod(len(v) for _, v in grid) > MAX_PATHS:
        raise ConfigError(f"--grid makes {math.prod(len(v) for _, v in grid)} paths; one map shows at most {MAX_PATHS}")
    members = []
    for combo in itertools.product(*[[(k, v) for v in vals] for k, vals in grid]):
        settings = dict(combo)
        label = ", ".join(v if k == "optim.name" else f"{k.removesuffix('.name').rpartition('.')[2]}={v}"
                          for k, v in settings.items())  # adam, lr=0.1, sched=cosine, batch_size=16
        members.append((label, settings, cfg.replace(**dict(parse_set(f"{k}={v}") for k, v in settings.items()))))
    return members


def output_dir(cfg: Config, out: str | None, overwrite: bool = False) -> Path:
    """--out, else runs/<name>-surface (numbered when taken); checked, not created. A folder holding
    surface.json is an earlier map's and is rewritten; any other non-empty --out needs `overwrite`."""
    if not out:
        return io.check_dir(io.numbered_dir(Path("runs") / f"{cfg['name']}-surface"))
    d = Path(out)
    return io.check_dir(d, overwrite=overwrite, own=(d / "surface.json").is_file(),
                        inputs=io.config_inputs(cfg, "the config being drawn"), what="the surface")


def hold(model: torch.nn.Module, fix: list[str]) -> None:
    """--fix NAME=VALUE: set every element of parameter NAME to VALUE and leave it out of training and the map."""
    named = dict(model.named_parameters())
    for item in fix:
        name, _, raw = (part.strip() for part in item.partition("="))
        if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", raw):
            raise ConfigError(f"--fix expects NAME=NUMBER, e.g. linear.bias=0 (got {item!r})")
        if name not in named:
            raise ConfigError(f"--fix {name}: the model has no parameter {name!r}{suggest(name, named)}; "
                              f"it has {', '.join(named)}")
        named[name].requires_grad_(False).fill_(float(raw))  # no longer trained: may be set in place


def _flat(params) -> torch.Tensor:
    return parameters_to_vector([p.detach() for p in params]).float().cpu()


def train_path(setup, cfg: Config, start: dict, params: list, budget: int) -> Trajectory:
    """Train from the `start` state for cfg's epochs, keeping the weights every `every` steps (<= budget points)."""
    from .engine.optim import LRSchedule, build_optimizer

    model, task = setup.model, setup.task
    model.load_state_dict(start)
    torch.manual_seed(cfg["seed"])  # dropout draws the same numbers on every path
    opt = build_optimizer(cfg, model)
    loader = replace(setup, cfg=cfg).loader("train", train=True)
    sched = LRSchedule(opt, cfg, len(loader), cfg["train.epochs"])
    l1, l2, clip, weights = cfg["loss.l1"], cfg["loss.l2"], cfg["train.grad_clip"], penalty_weights(model)
    every = max(1, math.ceil(cfg["train.epochs"] * len(loader) / max(budget - 2, 1)))
    points, first, steps, stopped = [_flat(params)], None, 0, False
    model.train()
    for epoch in range(1, cfg["train.epochs"] + 1):
        loader.set_epoch(epoch)
        for batch in loader:
            loss = task.training_step(model, batch)[0] + weight_penalty(weights, l1, l2)
            value = float(loss.detach())
            first = value if first is None else first
            stopped = not math.isfinite(value) or value > DIVERGE * abs(first)
            if stopped:
                break
            plain_step(opt, loss, model, clip)
            if sched.per_step:
                sched.step()
            steps += 1
            if steps % every == 0:
                points.append(_flat(params))
        if stopped:
            break
    if steps % every:
        points.append(_flat(params))
    return Trajectory("", {}, torch.stack(points), steps, every, stopped)


def loss_function(setup, params: list, limit: int | None):
    """(loss_at, n): the objective at weights `vec` over the first `limit` (None: all) training samples, n of them."""
    batches, n = [], 0
    for x, y in setup.loader("train"):
        keep = len(y) if limit is None else min(len(y), limit - n)
        if keep <= 0:
            break
        batches.append((x[:keep], y[:keep]))
        n += keep
    model, task, weights = setup.model, setup.task, penalty_weights(setup.model)
    l1, l2 = setup.cfg["loss.l1"], setup.cfg["loss.l2"]

    @torch.no_grad()
    def loss_at(vec: torch.Tensor) -> float:
        vector_to_parameters(vec.to(params[0], copy=True), params)  # a copy: the parameters take its storage
        model.eval()
        total = 0.0
        for x, y in batches:
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out  # auxiliary heads: the main output's loss
            total += float(task.loss(out, y)) * len(y)
        return total / n + float(weight_penalty(weights, l1, l2))

    return loss_at, n


def verdict(t: Trajectory, loss_at) -> str:
    """diverged: stopped, or ended above its start. oscillating: while still far from the end (over 10 % of
    the start's distance) ZIGZAG moves in a row each turned sharply back (cosine with the one before below
    -0.5): a steep direction overshot at every step, or mini-batch noise bounced across a narrow valley.
    still falling: along the path's last tenth the loss fell by over 1 % and the weights kept the direction
    of the tenth before (noise around a minimum turns at random). Else converged."""
    if t.stopped or not math.isfinite(t.final_loss) or t.final_loss > t.initial_loss:
        return "diverged"
    pts = t.points.double()
    moves, dist = pts[1:] - pts[:-1], (pts - pts[-1]).norm(dim=1)
    far = (dist[:-2] > 0.1 * dist[0]) & (dist[1:-1] > 0.1 * dist[0])
    back = (torch.nn.functional.cosine_similarity(moves[:-1], moves[1:], dim=1) < -0.5) & far
    if "1" * ZIGZAG in "".join("1" if b else "0" for b in back.tolist()):
        return "oscillating"
    last = len(pts) - 1
    b = min(int(0.9 * last), last - 1)  # the last tenth runs b -> end, the tenth before it a -> b
    a = min(int(0.8 * last), b - 1)
    fell = loss_at(t.points[b]) - t.final_loss
    steady = a < 0 or float(torch.nn.functional.cosine_similarity(pts[-1] - pts[b], pts[b] - pts[a], dim=0)) > 0
    return "still falling" if fell > 0.01 * t.final_loss and steady else "converged"


def filter_normalised(params: list, generator: torch.Generator) -> torch.Tensor:
    """A random direction (flat, in `params` order) whose every filter / neuron (slice along dim 0) has the
    norm of that filter of `params`; 1-D parameters (biases, norm layers' scales and shifts) get zero."""
    parts = []
    for p in params:
        if p.dim() <= 1:
            parts.append(torch.zeros(p.numel()))
            continue
        w = p.detach().float().cpu().reshape(len(p), -1)  # (filters, the weights of one filter)
        d = torch.randn(w.shape, generator=generator)
        parts.append((d * w.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + 1e-10)).reshape(-1))
    return torch.cat(parts)


def pca_directions(deviations: torch.Tensor):
    """The rows' two main directions (unit vectors) and their shares of the summed squares (uncentred PCA,
    as Li et al.); None when the rows span fewer than two directions."""
    m = deviations.float()
    vals, vecs = torch.linalg.eigh((m @ m.T).double())  # the n x n Gram matrix: n snapshots << P weights
    vals, vecs = vals.flip(0).clamp(min=0), vecs.flip(1)
    if len(vals) < 2 or vals[1] <= 1e-6 * vals[0]:  # float32 weights: below that it is rounding
        return None
    dirs = ((m.T.double() @ vecs[:, :2]) / vals[:2].sqrt()).float()
    return dirs[:, 0], dirs[:, 1], (vals[:2] / vals.sum()).tolist()


def _plane(setup, cfg, paths, params, directions: str, exact: bool):
    """(mode, axis names, note, origin, d1, d2): the two weights themselves, or a network's slice."""
    from .viz.surface import weight_names

    if exact:
        return "exact", weight_names(setup.model, setup.data.info.feature_names), "", torch.zeros(2), *torch.eye(2)
    tame = [t for t in paths if t.status != "diverged"] or paths  # a diverged path would take both directions
    ref = min(tame, key=lambda t: t.final_loss if math.isfinite(t.final_loss) else math.inf)
    origin, note = ref.points[-1], f"centre: the final weights of {ref.label}"
    pca = pca_directions(torch.cat([t.points - origin for t in tame])) if directions == "pca" else None
    if pca is not None:
        return "pca", [f"PC1 ({pca[2][0]:.0%} of the path's variance)", f"PC2 ({pca[2][1]:.0%})"], note, origin, *pca[:2]
    gen = torch.Generator().manual_seed(cfg["seed"])
    note += "" if directions == "random" else " (the path spans fewer than two directions: random ones)"
    return ("random", ["random direction 1", "random direction 2"], note, origin,
            filter_normalised(params, gen), filter_normalised(params, gen))


def run(cfg: Config, grids: list[str] = (), out: str | None = None, overwrite: bool = False,
        resolution: int | None = None, fix: list[str] = (), directions: str = "pca") -> dict:
    """Train each grid point's path from the same start, map the loss around them; write surface.png and
    surface.json, and return that JSON's content (axes, loss grid, paths) with the `folder`."""
    from .assemble import build
    from .catalog import load_all
    from .viz.surface import draw_surface, extent

    if resolution is not None and not 5 <= resolution <= 201:
        raise ConfigError(f"--resolution must be between 5 and 201 grid points per axis (got {resolution})")
    if directions not in DIRECTIONS:
        raise ConfigError(f"--directions must be one of {', '.join(DIRECTIONS)} (got {directions!r})")
    members = grid_members(cfg, list(grids))
    load_all()
    for _, _, m in members:  # an unknown optimizer or schedule: refused before anything trains
        OPTIMIZERS.get(m["optim.name"])
        SCHEDULES.get(m["sched.name"])
    folder = output_dir(cfg, out, overwrite)
    setup = build(cfg)
    if setup.task.kind == "detection":  # a detector's loss exists only in training mode, with sampled proposals
        raise ConfigError("dlsem surface maps no detector: its loss needs training mode (sampled anchors and proposals)")
    hold(setup.model, list(fix))
    params = [p for p in setup.model.parameters() if p.requires_grad]
    size = sum(p.numel() for p in params)
    if size < 2:
        raise ConfigError(f"the model trains {size} weight(s); a surface needs at least two (hold fewer with --fix)")
    exact, start = size == 2, copy.deepcopy(setup.model.state_dict())
    budget = 20_000 if exact else max(2, min(MAX_SNAPSHOTS, SNAPSHOT_BYTES // (4 * size * len(members))))
    paths = [replace(train_path(setup, member, start, params, budget), label=label, settings=settings)
             for label, settings, member in members]
    loss_at, n = loss_function(setup, params, None if exact else SUBSET)
    for t in paths:
        t.initial_loss, t.final_loss = loss_at(t.points[0]), loss_at(t.points[-1])
        t.status = verdict(t, loss_at)
    mode, names, note, origin, d1, d2 = _plane(setup, cfg, paths, params, directions, exact)
    basis = torch.stack([d1, d2], 1).double()  # (P, 2)
    for t in paths:  # least-squares coordinates: exact for orthonormal directions, right for random ones too
        t.xy = (((t.points.double() - origin) @ basis) @ torch.linalg.inv(basis.T @ basis)).tolist()
    calm = any(t.status != "diverged" for t in paths)  # then the map is theirs and a diverging path leaves it
    shown = [t.xy if t.status != "diverged" else t.xy[:1 if calm else 3] for t in paths]
    x0, x1, y0, y1 = extent([p for xy in shown for p in xy], (-1, 1, -1, 1) if mode == "random" else None)
    res = resolution or (EXACT_RESOLUTION if exact else SLICE_RESOLUTION)
    xs, ys = torch.linspace(x0, x1, res).tolist(), torch.linspace(y0, y1, res).tolist()
    num = lambda v: v if math.isfinite(v) else None  # noqa: E731 (JSON has no NaN or Infinity)
    result = {"config": cfg.source, "name": cfg["name"], "mode": mode, "note": note, "samples": n,
              "x": {"name": names[0], "values": xs}, "y": {"name": names[1], "values": ys},
              "loss": [[num(loss_at(origin + x * d1 + y * d2)) for x in xs] for y in ys],  # loss[i][j] at xs[j], ys[i]
              "paths": [{"label": t.label, "settings": t.settings, "status": t.status, "steps": t.steps, "every": t.every,
                         "initial_loss": num(t.initial_loss), "final_loss": num(t.final_loss),
                         "points": [[num(a), num(b)] for a, b in t.xy]} for t in paths]}
    folder.mkdir(parents=True, exist_ok=True)
    draw_surface(folder / "surface.png", result, cfg)
    io.write_text(folder / "surface.json", json.dumps(result, indent=1) + "\n")  # last: it marks the folder as ours
    return dict(result, folder=folder)
