"""The plots show what the lesson says: the figures are caught before they are written (savefig is
replaced) and their axes, lines, images and texts read back."""
from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the code under test saves, in order (nothing is written)."""
    import matplotlib.figure

    caught = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: caught.append(self))
    return caught


def _integer_ticks(ax) -> bool:
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    return bool(ticks) and all(float(t).is_integer() for t in ticks)


HISTORY = [{"epoch": e, "train/loss": 1 / e, "val/loss": 0.5 + abs(e - 3) * 0.1, "val/acc": 0.5 + 0.05 * e}
           for e in range(1, 6)]


# ---------------------------------------------------------------- curves.png
def test_curves_keep_the_tasks_metric_when_the_monitor_is_a_loss(figures, tmp_path):
    from dlseminar.summary import RunSummary
    from dlseminar.viz.curves import curves

    s = RunSummary(task="classification", monitor="val/loss", best_epoch=3)
    curves(tmp_path / "c.png", HISTORY, s)
    loss_ax, acc_ax = figures[0].axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "acc"
    acc = [ln for ln in acc_ax.lines if ln.get_label() == "val/acc"]
    assert len(acc) == 1 and list(acc[0].get_ydata()) == pytest.approx([r["val/acc"] for r in HISTORY])
    # the best-epoch star sits on the monitored curve: val/loss, in the loss panel
    assert [ln for ln in loss_ax.lines if ln.get_marker() == "*"]
    assert _integer_ticks(loss_ax) and _integer_ticks(acc_ax)  # 5 epochs: no tick at 1.5

    # a task whose own metric is the loss (regression) has nothing to add; an unknown task is not guessed at
    for task in ("regression", None):
        figures.clear()
        curves(tmp_path / "c.png", [{k: v for k, v in r.items() if k != "val/acc"} for r in HISTORY],
               RunSummary(task=task, monitor="val/loss"))
        assert [ax.get_title() for ax in figures[0].axes] == ["loss"]


def test_curves_panels_name_the_main_metric_before_another_monitor():
    from dlseminar.summary import RunSummary
    from dlseminar.viz.curves import panels

    history = [{**r, "val/top5": 0.9} for r in HISTORY]
    assert [t for t, _ in panels(history, RunSummary(task="classification", monitor="val/top5"))] == ["loss", "acc", "top5"]
    assert [t for t, _ in panels(history, RunSummary(task="classification", monitor="val/acc"))] == ["loss", "acc"]


# ---------------------------------------------------------------- compare.png
GRID = [{"optim.name": o, "optim.lr": lr} for o in ("sgd", "momentum", "rmsprop", "adam") for lr in ("0.1", "0.01", "1")]


def test_compare_styles_colour_by_the_first_key_and_dash_by_the_second():
    from dlseminar.viz.compare import styles

    look = styles(GRID, ["optim.name", "optim.lr"])
    assert len({s["color"] for s in look}) == 4 and len({s["dash"] for s in look}) == 3
    assert len({(s["color"], s["dash"]) for s in look}) == 12  # every member told apart
    for a, sa in zip(GRID, look):
        for b, sb in zip(GRID, look):
            assert (sa["color"] == sb["color"]) == (a["optim.name"] == b["optim.name"])
            assert (sa["dash"] == sb["dash"]) == (a["optim.lr"] == b["optim.lr"])
    # sorted values, not the ranking's order: the same grid gets the same colours in every sweep
    assert styles(GRID[::-1], ["optim.name", "optim.lr"]) == look[::-1]
    assert [s["dash"] for s in look[:3]] == [1, 0, 2]  # 0.01 < 0.1 < 1
    assert [s["color"] for s in styles(GRID, [])] == list(range(12))  # no keys: a colour a run


def _runs(settings, histories, statuses=None):
    statuses = statuses or ["finished"] * len(histories)
    return [{"label": f"run{i}", "history": h, "status": st, "settings": s}
            for i, (s, h, st) in enumerate(zip(settings, histories, statuses))]


def test_compare_draws_a_sweep_as_colours_times_line_styles(figures, tmp_path):
    from dlseminar.viz.compare import compare

    hist = [[{"epoch": e, "train/loss": (i + 1) / e, "val/loss": (i + 2) / e, "val/acc": 0.1 * e} for e in (1, 2, 3)]
            for i in range(12)]
    compare(tmp_path / "c.png", _runs(GRID, hist), "val/loss", keys=["optim.name", "optim.lr"], main="val/acc")
    axes = figures[0].axes
    assert [ax.get_title() for ax in axes] == ["val/acc", "val/loss (monitored)", "train/loss"]
    data = [ln for ln in axes[1].lines if len(ln.get_xdata()) == 3]
    assert len(data) == 12
    assert len({ln.get_color() for ln in data}) == 4 and len({str(ln.get_linestyle()) for ln in data}) == 3
    assert all(_integer_ticks(ax) for ax in axes)
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert labels == ["optim.name", "  adam", "  momentum", "  rmsprop", "  sgd", "optim.lr", "  0.01", "  0.1", "  1"]


def test_a_diverged_run_leaves_the_chart_through_the_top(figures, tmp_path):
    from dlseminar.viz.compare import compare, ran_away

    calm = [{"epoch": e, "train/loss": 1.0 / e, "val/loss": 1.2 / e} for e in (1, 2, 3, 4)]
    wild = [{"epoch": 1, "train/loss": 0.9, "val/loss": 1.1}, {"epoch": 2, "train/loss": 40.0, "val/loss": 1e6},
            {"epoch": 3, "train/loss": math.nan, "val/loss": math.inf}]
    instant = [{"epoch": 1, "train/loss": math.nan, "val/loss": math.inf}]  # diverged within its first epoch
    runs = _runs([{"lr": "0.1"}, {"lr": "3"}, {"lr": "10"}], [calm, wild, instant], ["finished", "diverged", "diverged"])
    compare(tmp_path / "c.png", runs, "val/loss", keys=["lr"])
    for ax in figures[0].axes:
        bottom, top = ax.get_ylim()
        assert top < 2  # scaled to the calm run: the diverged ones do not squash it
        marks = [t for t in ax.texts if t.get_text() == "diverged"]
        assert len(marks) == 2 and all(m.xy[1] == pytest.approx(top) for m in marks)
        wild_x = [m.xy[0] for m in marks if m.xy[0] != 1]
        assert len(wild_x) == 1 and 1 < wild_x[0] <= 3  # where its curve crosses the top edge, after epoch 1
    # a run that overflows without ever reaching inf (too high an lr, not stopped) ran away too
    overflow = [{"epoch": e, "train/loss": 10.0 ** (4 * e)} for e in (1, 2, 3)]
    assert ran_away({"history": overflow, "status": "finished"}) and not ran_away({"history": calm, "status": "finished"})


def test_compare_adds_the_per_step_loss_of_runs_that_logged_it(figures, tmp_path):
    from dlseminar.viz.compare import compare

    for name, per_epoch in (("sgd1", 40), ("full", 1)):
        (tmp_path / name).mkdir()
        lines = ["step,epoch,train/loss"] + [f"{i + 1},{i // per_epoch + 1},{2.0 / (1 + i / per_epoch):.6f}"
                                             for i in range(3 * per_epoch)]
        (tmp_path / name / "steps.csv").write_text("\n".join(lines) + "\n")
    hist = [{"epoch": e, "train/loss": 1.0 / e, "val/loss": 1.0 / e} for e in (1, 2, 3)]
    runs = [{**r, "dir": str(tmp_path / n)} for r, n in zip(_runs([{"b": "1"}, {"b": "full"}], [hist, hist]), ("sgd1", "full"))]
    compare(tmp_path / "c.png", runs, "val/loss", keys=["b"])
    ax = figures[0].axes[-1]
    assert ax.get_title() == "train/loss per step"
    assert sorted(len(ln.get_xdata()) for ln in ax.lines) == [3, 120, 120]  # full batch: one bold line; sgd: raw + mean


# ---------------------------------------------------------------- steps.png
def test_steps_png_reads_steps_csv(figures, tmp_path):
    from dlseminar.viz.steps import positions, steps

    rows = [(1, 1, 2.0), (2, 1, 1.0), (3, 2, 0.5), (4, 2, 0.25)]
    assert positions(rows) == [0.5, 1.0, 1.5, 2.0]
    csv_path = tmp_path / "steps.csv"
    csv_path.write_text("step,epoch,train/loss\n" + "".join(f"{s},{e},{v}\n" for s, e, v in rows))
    assert steps(tmp_path / "steps.png", csv_path)
    ax = figures[0].axes[0]
    assert list(ax.lines[0].get_ydata()) == [2.0, 1.0, 0.5, 0.25] and _integer_ticks(ax)
    csv_path.write_text("step,epoch,train/loss\n")
    assert not steps(tmp_path / "steps.png", csv_path)


# ---------------------------------------------------------------- task plots
def test_mistakes_titles_do_not_overlap(figures, tmp_path):
    from dlseminar.tasks.classification.plots import mistakes

    names = ["automobile", "airplane", "Scomber_scombrus_atlantic_mackerel", "truck"]
    X = torch.rand(16, 3, 8, 8) * 255
    y = torch.arange(16) % 4
    assert mistakes(tmp_path / "m.png", X, y, (y + 2) % 4, names, {"scale": torch.tensor(255.0)})
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures[0]
    renderer = FigureCanvasAgg(fig).get_renderer()  # the saved figure was closed: measure on a new canvas
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert len(boxes) == 16
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_segmentation_masks_are_painted_in_the_legends_colours(figures, tmp_path):
    import numpy as np

    from dlseminar.tasks.segmentation.plots import predictions
    from dlseminar.viz.images import IGNORE_RGB, class_colors

    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 256, (2, 3, 16, 16), generator=g, dtype=torch.uint8)  # a busy image under the masks
    masks = torch.randint(0, 3, (2, 16, 16), generator=g)
    masks[0, :2] = 255
    colors = class_colors(3)
    predictions(tmp_path / "p.png", X, masks, (masks + 1) % 3, ["bg", "cat", "dog"], colors, 255.0, "val")
    fig = figures[0]
    legend = {tuple((np.array(h.get_facecolor()[:3]) * 255).round().astype(int)) for h in fig.legends[0].legend_handles}
    assert {tuple(c) for c in colors.tolist()} <= legend and tuple(IGNORE_RGB) in legend
    for ax in fig.axes[1::3] + fig.axes[2::3]:  # the true and the predicted panels
        pixels = {tuple(p) for p in ax.images[0].get_array().reshape(-1, 3).tolist()}
        assert pixels <= legend, pixels - legend


def test_two_class_boundary_colour_scale_is_zero_to_one(figures, tmp_path):
    from dlseminar.assemble import build
    from dlseminar.boundary import decision_boundary
    from dlseminar.config import resolve

    setup = build(resolve(sets=["data.name=moons", "model.name=mlp"]))
    with torch.no_grad():
        for p in setup.model.parameters():
            p.mul_(0.01)  # an untrained-looking model: every probability near 0.5
    decision_boundary(tmp_path / "b.png", setup.model, setup.task, setup.data, setup.device, steps=40)
    bar = figures[0].axes[-1]
    assert bar.get_ylim() == pytest.approx((0.0, 1.0))
    assert "probability" in bar.get_ylabel()


def test_health_epoch_axes_have_integer_ticks(figures, tmp_path):
    from dlseminar.viz.health import health

    layers = ["a.weight", "b.weight"]
    h = {"layers": layers, "epochs": [1, 2, 3], "relu_layers": ["r"], "dead_relu": {"r": [0.1, 0.2, 0.2]},
         "probe_samples": 8, "near_zero_all": [0.1, 0.2, 0.3], "near_zero": {n: [0.1, 0.2, 0.3] for n in layers},
         "threshold": 1e-3, "grad_norm": {n: [1.0, 0.5, 0.2] for n in layers}, "first_to_last_grad": [1.0],
         "weight_hist": {n: [{"max": 1.0, "counts": [1, 2, 1]}] for n in layers}}
    health(tmp_path / "h.png", h)
    dead, near = figures[0].axes[1], figures[0].axes[2]
    assert _integer_ticks(dead) and _integer_ticks(near)
