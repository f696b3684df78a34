"""Every list of names a user sees comes from the registries, so it cannot go stale.

`dlsem config show` lists, for each key that picks a registered component, exactly the names
registered now (including a name registered by this test) and which builders take each loss,
optim and sched key (from their signatures); a schedule registered here
alone trains through `dlsem train`.
"""
from __future__ import annotations

import math
import re

import pytest

from conftest import metrics_rows
from dlseminar import catalog, registry
from dlseminar.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULES, TASKS

catalog.load_all()

KEYS = {"task": TASKS, "model.name": MODELS, "data.name": DATASETS, "loss.name": LOSSES,
        "optim.name": OPTIMIZERS, "sched.name": SCHEDULES}


def shown(out: str, label: str = "one of") -> dict[str, list[str]]:
    """dotted key -> the names after '<label>:' in its `dlsem config show` comment."""
    names, section = {}, None
    for line in out.splitlines():
        m = re.match(r"^(\s*)([\w.]+):.*?# (.*)$", line)
        if not m and re.match(r"^\w+:$", line):
            section = line[:-1]
        if not m:
            continue
        key = f"{section}.{m[2]}" if m[1] else m[2]
        found = re.search(rf"; {label}: ([^;]+)", m[3])
        if found:
            names[key] = found[1].split(", ")
    return names


def test_config_show_lists_every_registered_name(dlsem):
    r = dlsem("config", "show")
    assert r.rc == 0, r
    lists = shown(r.out)
    for key, reg in KEYS.items():
        assert set(reg.names()) <= set(lists[key]), key
    # each task's own losses too (the detector's rcnn is not in LOSSES), and nothing else
    assert set(lists["loss.name"]) == set(LOSSES.names()) | {n for e in TASKS.entries() for n in e.fn.losses()}
    assert {"dice", "ce_dice", "rcnn"} <= set(lists["loss.name"])
    assert lists["task"] == TASKS.names() and lists["sched.name"] == SCHEDULES.names()
    assert lists["model.backbone"] == registry.backbones()
    assert {"cnn", "resnet18", "vgg16_bn", "alexnet"} <= set(lists["model.backbone"])


def test_every_backbone_builds_a_detector():
    """Each model offered as a backbone names a known way to cut it, and fasterrcnn accepts it."""
    import torch

    from dlseminar import config
    from dlseminar.models import build_model
    from dlseminar.models.detector import BODIES

    for name in registry.backbones():
        assert MODELS.get(name).meta["backbone"] in BODIES, name
        with torch.device("meta"):
            cfg = config.resolve(sets=["model.name=fasterrcnn", f"model.backbone={name}"])
            assert build_model(cfg, (3, 64, 64), 3, "detections").backbone is not None


class _Task:
    """A stand-in task (only what the listing reads)."""

    @classmethod
    def losses(cls):
        return ["made_up_loss_of_a_task"]


@pytest.mark.parametrize("key, reg, meta", [
    ("task", TASKS, {}), ("model.name", MODELS, {}), ("model.backbone", MODELS, {"backbone": "resnet"}),
    ("data.name", DATASETS, {"kind": "classification"}), ("loss.name", LOSSES, {"wants": "index_logits"}),
    ("optim.name", OPTIMIZERS, {}), ("sched.name", SCHEDULES, {}),
])
def test_a_name_registered_here_is_listed(dlsem, key, reg, meta):
    def made_up():
        """A component registered by a test."""

    fn = _Task if reg is TASKS else made_up
    reg.register("made_up_name", **meta)(fn)
    try:
        lists = shown(dlsem("config", "show").out)
    finally:
        reg.unregister("made_up_name")
    assert "made_up_name" in lists[key]
    if reg is TASKS:
        assert "made_up_loss_of_a_task" in lists["loss.name"]
    assert "made_up_name" not in shown(dlsem("config", "show").out)[key]


def test_config_show_says_which_builders_take_a_key(dlsem):
    """From the builders' signatures: label smoothing is taken by ce_dice too (the hand list said ce)."""
    import inspect

    taken = shown(dlsem("config", "show").out, "taken by")
    assert taken["loss.label_smoothing"] == ["ce", "ce_dice"]
    assert taken["optim.momentum"] == ["momentum", "nesterov"] and taken["sched.min_lr"] == ["cosine", "plateau"]
    assert "optim.lr" not in taken and "loss.l1" not in taken  # every optimizer takes lr; no loss takes l1
    for key, names in taken.items():
        reg = {"loss": LOSSES, "optim": OPTIMIZERS, "sched": SCHEDULES}[key.split(".")[0]]
        for name in reg.names():
            takes = key.split(".")[1] in inspect.signature(reg.get(name).fn).parameters
            assert takes == (name in names), (key, name)


@pytest.mark.parametrize("option", ["--optimizer", "--loss"])
def test_train_help_points_to_the_generated_list(dlsem, option):
    """--help imports no registry (no torch), so it names where the list is instead of keeping one."""
    out = dlsem("train", "--help", env={"COLUMNS": "200"}).out
    line = next(ln for ln in out.splitlines() if option in ln)
    assert "dlsem config show" in line
    reg = OPTIMIZERS if option == "--optimizer" else LOSSES
    assert not [n for n in reg.names() if re.search(rf"\b{n}\b", line)], line


def test_a_schedule_registered_here_trains_through_the_config(dlsem, tmp_path):
    """Registration alone: `dlsem train --set sched.name=...` finds it, LRSchedule steps it."""

    @SCHEDULES.register("halve_each_epoch")
    def halve(epoch, progress, gamma):
        """Multiply the lr by sched.gamma every epoch."""
        return gamma ** int(epoch)

    try:
        r = dlsem("train", "--data", "xor", "--model", "perceptron", "--epochs", "3", "--optimizer", "sgd",
                  "--lr", "0.4", "--patience", "0", "--set", "sched.name=halve_each_epoch", "--set", "sched.gamma=0.5",
                  "--set", "data.n_samples=40", "--set", "logging.plots=false", "--out", "run")
    finally:
        SCHEDULES.unregister("halve_each_epoch")
    assert r.rc == 0, r
    lrs = [float(row["lr"]) for row in metrics_rows(tmp_path / "run")]
    assert len(lrs) == 3
    assert all(math.isclose(b / a, 0.5) for a, b in zip(lrs, lrs[1:])), lrs
    assert math.isclose(lrs[0], 0.2), lrs  # after epoch 1's steps: epoch 1.0 -> 0.4 * 0.5


def test_an_unknown_backbone_is_refused_with_the_registered_list():
    from dlseminar import config
    from dlseminar.errors import ConfigError
    from dlseminar.models import build_model

    with pytest.raises(ConfigError) as e:
        build_model(config.resolve(sets=["model.name=fasterrcnn", "model.backbone=resnet19"]), (3, 64, 64), 3,
                    "detections")
    assert f"is not one of {', '.join(registry.backbones())} (did you mean 'resnet18'?)" in str(e.value)
