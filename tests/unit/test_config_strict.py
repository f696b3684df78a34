"""Keys and flags are checked before training: strict YAML, --set lists, sections, seeds, run names,
early_stop.monitor against the task's declared metrics, absolute data paths, config bombs,
--resume epochs, and readable --help / --version."""
from __future__ import annotations

import os
import re
import time
import tracemalloc

import numpy as np
import pytest
import torch

from dlseminar import config
from dlseminar.config import parse_set, resolve
from dlseminar.config_schema import MAX_SET_CHARS, SEED_MAX
from dlseminar.errors import ConfigError


def write(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


# --------------------------------------------------------------------------- --set values


@pytest.mark.parametrize("raw", ["[8,,8]", "[", "8]]", "[8,8", "{a: 1", "a}", "[8, 8]]", "[weird].csv"])
def test_set_text_meant_as_a_list_that_does_not_parse_is_an_error(raw):
    msg = error(parse_set, f"model.widths={raw}")
    assert f"--set model.widths={raw}: not a valid list or mapping" in msg


@pytest.mark.parametrize("item, value", [("model.widths=[8, 16]", [8, 16]), ("model.widths=8,16", "8,16"),
                                         ("model.widths=[[8]]", [[8]]), ("data.path='[weird].csv'", "[weird].csv")])
def test_set_lists_that_parse_and_quoted_text_are_kept(item, value):
    assert parse_set(item)[1] == value


@pytest.mark.parametrize("item, value", [("name=007", "007"), ("data.target=1.10", "1.10"), ("name=yes", "yes"),
                                         ("device=cuda:0", "cuda:0"), ("name='x y'", "x y"), ("data.path=", None),
                                         ("data.path=null", None)])
def test_text_keys_keep_the_text_as_typed(item, value):
    key = item.split("=")[0]
    assert resolve(sets=[item])[key] == (value if key != "name" or value is not None else "default")


def test_a_broken_list_in_a_yaml_file_is_not_read_as_a_list(tmp_path):
    assert "model.widths must be a list like [8, 16] (got '8]]')" in error(resolve, write(tmp_path, "model:\n  widths: 8]]\n"))
    assert "not valid YAML at line 2" in error(resolve, write(tmp_path, "model:\n  widths: [8,,8]\n"))


def test_text_key_given_a_yaml_boolean_asks_for_quotes(tmp_path):
    assert "quote it" in error(resolve, write(tmp_path, "name: yes\n"))
    assert resolve(write(tmp_path, "name: 'yes'\n"))["name"] == "yes"


# --------------------------------------------------------------------------- YAML structure


@pytest.mark.parametrize("text, words", [
    ("optim:\n  lr: 0.1\n  name: sgd\n  lr: 0.2\n", "sets 'optim.lr' twice (lines 2 and 4)"),
    ("optim:\n  lr: 0.1\noptim:\n  name: sgd\n", "sets 'optim' twice (lines 1 and 3)"),
    ("seed: 1\nmodel:\n  name: mlp\nseed: 2\n", "sets 'seed' twice (lines 1 and 4)"),
    ("optim.lr: 0.1\noptim:\n  lr: 0.2\n", "sets 'optim.lr' twice"),
    ("model: mlp\nmodel.name: cnn\n", "sets 'model.name' twice"),
])
def test_duplicate_keys_name_the_key_and_lines(tmp_path, text, words):
    assert words in error(resolve, write(tmp_path, text))


def test_duplicate_keys_deep_inside_any_value_are_refused():
    from dlseminar import strict_yaml

    with pytest.raises(strict_yaml.Refused, match=r"sets 'a\.b\[1\]\.c' twice \(lines 4 and 5\)"):
        strict_yaml.load("a:\n  b:\n    - x\n    - c: 1\n      c: 2\n")


@pytest.mark.parametrize("text, words", [
    ("train: null\n", "section 'train' must be a mapping of keys (got null)"),
    ("train: 5\n", "section 'train' must be a mapping of keys (got 5)"),
    ("optim: [1, 2]\n", "section 'optim' must be a mapping of keys or a name (optim: NAME) (got a list)"),
    ("early_stop: yes\n", "section 'early_stop' must be a mapping of keys (got true)"),
    ("model: null\n", "section 'model' must be a mapping of keys or a name (model: NAME) (got null)"),
    ("data: 3\n", "(got 3)"),
])
def test_a_section_must_be_a_mapping(tmp_path, text, words):
    assert words in error(resolve, write(tmp_path, text))


def test_section_shorthand_still_names_the_component(tmp_path):
    assert resolve(write(tmp_path, "model: cnn\noptim: sgd\n"))["model.name"] == "cnn"


# --------------------------------------------------------------------------- seeds and names


@pytest.mark.parametrize("seed", [0, 1, SEED_MAX])
def test_seeds_in_range_are_accepted(seed):
    assert resolve(sets=[f"seed={seed}"])["seed"] == seed


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 2**63, 10**40])
def test_seeds_out_of_range_say_the_range(seed):
    assert f"seed must be in 0 .. {SEED_MAX}" in error(resolve, sets=[f"seed={seed}"])


def test_the_largest_seed_works_in_every_place_a_seed_is_used():
    """NumPy, scikit-learn and torch take it, and so do the seeds mixed from it (split, shuffle, augment, DDP)."""
    from dlseminar.data.augment import Augment
    from dlseminar.data import split_indices
    from dlseminar.engine.distributed import rank_seed
    from dlseminar.assemble import seed_all

    seed_all(SEED_MAX)
    parts = split_indices(40, 0.2, 0.2, SEED_MAX, strata=np.arange(40) % 2)
    assert sum(len(v) for v in parts.values()) == 40
    torch.manual_seed(rank_seed(SEED_MAX, 7, 10**6))
    aug = Augment(["hflip"], (8, 8), False, SEED_MAX)
    x, _ = aug(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2), epoch=10**4, batch=10**4)
    assert x.shape == (2, 3, 8, 8)
    assert rank_seed(5, 1, 2) == (5 * 1_000_003 + 1) * 100_003 + 2  # small seeds: the same streams as before


@pytest.mark.parametrize("name, words", [
    ("a/b", "path separator"), ("a\\b", "path separator"), ("..", "cannot start with '.'"),
    ("../x", "path separator"), (".hidden", "cannot start with '.'"), ("x" * 101, "at most 100 characters"),
])
def test_run_names_must_be_one_plain_folder_name(name, words):
    msg = error(resolve, sets=[f"name='{name}'"])
    assert msg.startswith("name ") and words in msg


def test_empty_name_and_hidden_file_stem_are_refused(tmp_path):
    assert "name must not be empty" in error(resolve, write(tmp_path, "name: ''\n"))
    msg = error(resolve, write(tmp_path, "seed: 1\n", ".x.yaml"))
    assert "the run name '.x' (the config file's name) cannot start with '.'" in msg and "--set name=" in msg
    assert resolve(sets=["name=my run-2"])["name"] == "my run-2"


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("item, words", [
    ("train.epochs=" + "9" * 30, "train.epochs must be below 2**63"),
    ("model.hidden=[99999999999999999999]", "model.hidden must be below 2**63"),
    ("model.hidden=" + str(list(range(1, 10_002))).replace(" ", ""), "at most 10,000"),
    ("optim.betas=[0.9, .nan]", "optim.betas must be a list of finite numbers"),
])
def test_huge_numbers_and_lists_are_refused(item, words):
    if len(item) > MAX_SET_CHARS:  # the list is longer than one --set may be: through a file instead
        words = "characters; a config value is at most"
    assert words in error(resolve, sets=[item])


def test_huge_set_value_is_refused_quickly_in_a_short_line():
    item = "model.name=" + "x" * 50_000_000
    t = time.perf_counter()
    msg = error(resolve, sets=[item])
    assert time.perf_counter() - t < 0.5
    assert "50,000,011 characters" in msg and len(msg) < 200


def test_long_text_values_are_refused_without_echoing_them(tmp_path):
    msg = error(resolve, named={"out": "d" * 100_000})
    assert "out is 100,000 characters long" in msg and len(msg) < 100
    msg = error(resolve, write(tmp_path, "k" * 1000 + ": 1\n"))  # YAML allows keys up to 1024 characters
    assert "unknown config key 'kkkk" in msg and len(msg) < 300


# --------------------------------------------------------------------------- config bombs


def test_big_config_file_is_refused_before_it_is_read(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.truncate(300_000_000)  # sparse: 300 MB that costs no disk
    t = time.perf_counter()
    msg = error(resolve, p)
    assert time.perf_counter() - t < 1.0
    assert "is 300.0 MB; a recipe is a few KB" in msg


def test_alias_bomb_fails_fast_in_bounded_memory(tmp_path):
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefghij", "bcdefghijk"):  # 9**10 = 3.5 billion strings once expanded
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    p = write(tmp_path, "\n".join(lines) + "\n")
    tracemalloc.start()
    t = time.perf_counter()
    msg = error(resolve, p)
    seconds, (_, peak) = time.perf_counter() - t, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "uses the anchor &a at line 1: anchors and aliases are not read in a recipe" in msg
    assert seconds < 1.0 and peak < 20e6, (seconds, peak)


def test_alias_and_merge_key_are_refused_too(tmp_path):
    assert "uses the alias *x at line 1" in error(resolve, write(tmp_path, "seed: *x\n"))
    assert "anchor &base" in error(resolve, write(tmp_path, "optim: &base {lr: 0.1}\nsched:\n  <<: *base\n"))


def test_deep_nesting_is_refused_fast(tmp_path):
    p = write(tmp_path, "a: " + "[" * 200_000 + "]" * 200_000 + "\n")
    t = time.perf_counter()
    assert "nests deeper than 32 levels at line 1" in error(resolve, p)
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize("data, words", [
    (b"\xff\xfe\x00garbage\x80", "is not UTF-8 text (byte 0xff at offset 0)"),
    (b"optim:\n\tlr: 0.1\n", "(YAML indents with spaces, not tabs)"),
    (b"\xef\xbb\xbfseed: 3\n", None),  # a UTF-8 byte-order mark is fine
])
def test_unreadable_text(tmp_path, data, words):
    p = tmp_path / "c.yaml"
    p.write_bytes(data)
    if words is None:
        assert resolve(p)["seed"] == 3
    else:
        assert words in error(resolve, p)


def test_special_files_are_not_read(tmp_path):
    if os.path.exists("/dev/zero"):
        assert "is not a regular file" in error(resolve, "/dev/zero")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "is not a regular file" in error(resolve, fifo)  # reading it would block forever


# --------------------------------------------------------------------------- data paths


def test_absolute_makes_data_paths_absolute_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve(sets=["data.path=sub/d.csv", "out=runs/x"])
    stored = cfg.absolute()
    assert cfg["data.path"] == "sub/d.csv"  # the run reads (and names) the path as typed
    assert stored["data.path"] == str(tmp_path / "sub/d.csv")
    assert stored["data.root"] == str(tmp_path / "data")
    assert stored["out"] == "runs/x" and stored.explicit == cfg.explicit
    again = resolve(base=stored.to_dict())  # a checkpoint's config read back elsewhere
    assert again["data.path"] == str(tmp_path / "sub/d.csv")
    assert "data.root" not in again.explicit  # the default made absolute is still the default
    assert "data.path" in again.explicit
    # a sweep continued from another directory: the default folder is the same setting, a data file is not
    assert config.same_setting("data.root", str(tmp_path / "data"), "/elsewhere/data")
    assert not config.same_setting("data.root", str(tmp_path / "data"), "/elsewhere/images")
    assert not config.same_setting("data.path", "/a/d.csv", "/b/d.csv")


def _csv(path, n=60):
    rng = np.random.RandomState(0)
    X = rng.randn(n, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b,y\n" + "".join(f"{a:.4f},{b:.4f},{int(a > 0)}\n" for a, b in X))


def test_a_run_on_a_relative_csv_path_is_evaluated_from_another_directory(dlsem, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    _csv(a / "sub/d.csv")
    b.mkdir()
    r = dlsem("train", "--data", "csv", "--set", "data.path=sub/d.csv", "--epochs", "1", "--out", "run",
              "--set", "logging.plots=false", cwd=a)
    assert r.rc == 0, r
    assert f"path: {a / 'sub/d.csv'}" in (a / "run/config.yaml").read_text()
    r = dlsem("eval", a / "run/best.pt", "--json", cwd=b)
    assert r.rc == 0 and '"test/acc"' in r.out, r
    r = dlsem("train", "--resume", a / "run/last.pt", "--epochs", "2", cwd=b)  # resumes from anywhere too
    assert r.rc == 0, r


# --------------------------------------------------------------------------- --resume epochs


def test_resume_with_fewer_epochs_is_refused_and_equal_epochs_explains(dlsem, tmp_path):
    assert dlsem("train", "--data", "iris", "--epochs", "3", "--out", "run", "--set", "logging.plots=false").rc == 0
    before = (tmp_path / "run/last.pt").read_bytes()
    r = dlsem("train", "--resume", "run/last.pt", "--epochs", "2")
    assert r.rc == 2 and r.err.strip() == ("error: this run already ran 3 epochs; train.epochs 2 is fewer: pass --epochs 4 "
                                           "or more to train on (--epochs 3 only writes its test results and plots again)"), r
    assert (tmp_path / "run/last.pt").read_bytes() == before
    r = dlsem("train", "--resume", "run/last.pt")
    assert r.rc == 0 and "note: this run already ran all 3 epochs of train.epochs: nothing to train" in r.err, r
    assert "--epochs 4 or more" in r.err


# --------------------------------------------------------------------------- early_stop.monitor


def _batch(kind: str, k: int):
    """A tiny (info, model, batch) of each task kind for one eval_step."""
    from dlseminar.data import DataInfo

    names = [f"c{i}" for i in range(k)]
    if kind == "classification":
        return DataInfo("t", kind, (2,), k, names), lambda x: torch.randn(len(x), k), (torch.randn(6, 2), torch.arange(6) % k)
    if kind == "regression":
        return DataInfo("t", kind, (2,)), lambda x: torch.randn(len(x), 1), (torch.randn(6, 2), torch.randn(6, 1))
    if kind == "segmentation":
        return (DataInfo("t", kind, (3, 8, 8), k, names), lambda x: torch.randn(len(x), k, 8, 8),
                (torch.randn(2, 3, 8, 8), torch.randint(0, k, (2, 8, 8))))
    if kind == "detection":
        box = torch.tensor([[1.0, 1.0, 6.0, 6.0]])
        target = {"boxes": box, "labels": torch.tensor([1])}
        out = {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
        return DataInfo("t", kind, (3, 8, 8), k, names), lambda xs: [dict(out) for _ in xs], ([torch.zeros(3, 8, 8)], [target])
    raise AssertionError(f"no test batch for task {kind!r}: add one here")


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_every_task_declares_exactly_the_metrics_it_computes(classes):
    from dlseminar.catalog import load_all
    from dlseminar.registry import TASKS
    from dlseminar.tasks import build_task

    load_all()
    assert set(TASKS.names()) == {"classification", "regression", "segmentation", "detection"}
    for kind in TASKS.names():
        info, model, batch = _batch(kind, classes)
        task = build_task(resolve(), info)
        metrics = task.new_metrics("cpu")
        task.eval_step(model, batch, metrics)
        assert list(metrics.compute()) == task.metric_names(), kind
        assert set(task.metric_names()) <= set(task.metric_modes) and set(task.metric_modes.values()) <= {"min", "max"}
        own = task.monitor.removeprefix("val/")
        assert own in task.metric_names() and task.metric_modes[own] == task.mode, kind


@pytest.mark.parametrize("kind, sets, monitor, mode", [
    ("classification", [], "val/acc", "max"),
    ("classification", ["early_stop.monitor=val/loss"], "val/loss", "min"),
    ("classification", ["early_stop.monitor=train/loss"], "train/loss", "min"),
    ("classification", ["early_stop.monitor=val/loss", "early_stop.mode=max"], "val/loss", "max"),
    ("regression", [], "val/loss", "min"),
    ("regression", ["early_stop.monitor=val/r2"], "val/r2", "max"),  # a guess from the name said min for *2
    ("regression", ["early_stop.monitor=val/rmse"], "val/rmse", "min"),
    ("segmentation", ["early_stop.monitor=val/dice"], "val/dice", "max"),
    ("detection", ["early_stop.monitor=val/recall"], "val/recall", "max"),
])
def test_monitor_direction_comes_from_the_task(kind, sets, monitor, mode):
    from dlseminar.catalog import load_all
    from dlseminar.tasks import build_task

    load_all()
    task = build_task(resolve(sets=sets), _batch(kind, 6)[0])
    assert task.monitor_mode(resolve(sets=sets)) == (monitor, mode)


@pytest.mark.parametrize("kind, classes, monitor, words", [
    ("classification", 6, "val/accuracy", "'val/accuracy' is not a metric of the classification task (did you mean 'val/acc'?); "
                                          "choose one of val/loss, val/acc, val/top5, train/loss"),
    ("classification", 3, "val/top5", "'val/top5' is not recorded for this data; choose one of val/loss, val/acc, train/loss"),
    ("regression", 0, "val/acc", "is not a metric of the regression task"),
    ("detection", 3, "val/loss", "choose one of val/map, val/map50, val/map75, val/recall, train/loss"),
    ("segmentation", 3, "test/miou", "is not a metric of the segmentation task"),
])
def test_unknown_monitor_lists_the_task_metrics(kind, classes, monitor, words):
    from dlseminar.catalog import load_all
    from dlseminar.tasks import build_task

    load_all()
    cfg = resolve(sets=[f"early_stop.monitor={monitor}"])
    assert words in error(build_task(cfg, _batch(kind, classes)[0]).monitor_mode, cfg)


# --------------------------------------------------------------------------- --help and --version


def _commands():
    """Every command path of the CLI (groups and leaves), found by walking the app."""
    import typer

    from dlseminar.cli import app

    out = []

    def walk(cmd, path):
        out.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


PLACEHOLDER = re.compile(r"<(str|int|float|bool|path|list|text|int range|float range)\b[^>]*>|\b(TEXT|INTEGER|FLOAT|"
                         r"BOOLEAN|PATH)\b|\[default: None\]")


def test_every_help_page_names_values_and_shows_no_type_placeholder(dlsem):
    paths = _commands()
    assert ["train"] in paths and ["models", "show"] in paths and ["config", "show"] in paths
    for path in paths:
        r = dlsem(*path, "--help", env={"COLUMNS": "200"})
        assert r.rc == 0 and "Usage: dlsem" in r.out, (path, r)
        bad = PLACEHOLDER.findall(r.out)
        assert not bad, (path, bad, r.out)
    out = dlsem("train", "--help", env={"COLUMNS": "200"}).out
    for shown in ("--lr", "LR"), ("--out", "DIR"), ("--set", "KEY=VALUE"), ("--epochs", "N"), ("--resume", "CKPT"):
        assert re.search(rf"{re.escape(shown[0])}\s+{re.escape(shown[1])}\s", out), shown


def test_version(dlsem):
    from importlib import metadata

    r = dlsem("--version")
    assert r.rc == 0 and r.err == ""
    assert r.out == f"dlsem {metadata.version('dlseminar')}\n"
    assert "--version" in dlsem("--help").out
