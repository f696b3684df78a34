"""Hostile configs: every way a recipe, a --set or a named option can be wrong is one short `error:`
line and exit 2, before any training, with no input changed and no run directory left behind.

Lists that do not parse, duplicate keys, sections that are not mappings, seeds out of range, run
names that are paths, a monitor the task does not record, config bombs (a file of megabytes, an
alias bomb, deep nesting, a --set of megabytes), unknown keys in every section, a wrong type for
each kind of key, unreadable files, and the few inputs that are fine (an empty recipe, yes/no).
"""
from __future__ import annotations

import pytest
from _harness import hostile

from dlseminar.config_schema import SECTIONS

SEED = "seed must be in 0 .. 4294967295"
FAST = ("--set", "logging.plots=false")

FILES = {
    "dup.yaml": "optim:\n  lr: 0.1\n  name: sgd\n  lr: 0.2\n",
    "dup_top.yaml": "optim:\n  lr: 0.1\noptim:\n  name: sgd\n",
    "dup_dotted.yaml": "optim.lr: 0.1\noptim:\n  lr: 0.2\n",
    "train_null.yaml": "train: null\n",
    "train_five.yaml": "train: 5\n",
    "optim_list.yaml": "optim: [1, 2]\n",
    "widths_broken.yaml": "model:\n  widths: 8]]\n",
    "widths_bad.yaml": "model:\n  widths: [8,,8]\n",
    "empty_name.yaml": "name: ''\n",
    "yes_name.yaml": "name: yes\n",
    ".hidden.yaml": "seed: 1\n",
    "empty.yaml": "",
    "comments.yaml": "# nothing but a comment\n",
    "list.yaml": "- a\n- b\n",
    "scalar.yaml": "42\n",
    "tabs.yaml": "optim:\n\tlr: 0.1\n",
    "deep.yaml": "a: " + "[" * 50_000 + "]" * 50_000 + "\n",
    "alias.yaml": "seed: *x\n",
    "merge.yaml": "optim: &base {lr: 0.1}\nsched:\n  <<: *base\n",
    "long_key.yaml": "k" * 1000 + ": 1\n",
    "two_docs.yaml": "seed: 1\n---\nseed: 2\n",
    "python_tag.yaml": "seed: !!python/object/apply:os.system ['true']\n",
    "unknown_top.yaml": "bogus: 1\n",
    "unknown_nested.yaml": "train:\n  epoch: 3\n",
    "yes_bool.yaml": "model:\n  batch_norm: yes\n",
}


def _bomb() -> str:
    """A YAML 'billion laughs': ten levels of nine aliases each (3.5 billion strings once expanded)."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefghij", "bcdefghijk"):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _inputs(root):
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "bomb.yaml").write_text(_bomb())
    (root / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (root / "folder.yaml").mkdir()
    with open(root / "big.yaml", "wb") as f:
        f.write(b"seed: 1\n")
        f.truncate(5_200_000)  # 5.2 MB: what a pasted data file or a runaway script leaves


CASES = [
    # lists that do not parse: an error naming the key and the text, never a silently kept string
    (["train", "--set", "model.widths=[8,,8]"], ["--set model.widths=[8,,8]: not a valid list"]),
    (["train", "--set", "model.widths=["], ["--set model.widths=[: not a valid list"]),
    (["train", "--set", "model.widths=8]]"], ["--set model.widths=8]]: not a valid list"]),
    (["train", "--set", "model.widths=[8,8"], ["--set model.widths=[8,8: not a valid list"]),
    (["train", "--set", "model.hidden={a: 1"], ["model.hidden={a: 1: not a valid list"]),
    (["train", "--set", "name=[run"], ["--set name=[run: not a valid list", "quote text"]),
    (["train", "widths_broken.yaml"], ["model.widths must be a list like [8, 16]", "'8]]'"]),
    (["train", "widths_bad.yaml"], ["not valid YAML at line 2"]),
    # duplicate keys, at any depth
    (["train", "dup.yaml"], ["sets 'optim.lr' twice (lines 2 and 4)"]),
    (["train", "dup_top.yaml"], ["sets 'optim' twice (lines 1 and 3)"]),
    (["train", "dup_dotted.yaml"], ["sets 'optim.lr' twice"]),
    # sections that are not mappings
    (["train", "train_null.yaml"], ["section 'train' must be a mapping of keys (got null)"]),
    (["train", "train_five.yaml"], ["section 'train' must be a mapping of keys (got 5)"]),
    (["train", "optim_list.yaml"], ["section 'optim' must be a mapping of keys or a name", "(got a list)"]),
    # seeds outside what NumPy and torch take
    (["train", "--seed", "-1"], [SEED, "got -1"]),
    (["train", "--set", "seed=4294967296"], [SEED, "got 4294967296"]),
    (["train", "--seed", "18446744073709551616"], [SEED]),
    # run names that are paths
    (["train", "--set", "name=a/b"], ["name cannot contain a path separator"]),
    (["train", "--set", "name=a\\b"], ["name cannot contain a path separator"]),
    (["train", "--set", "name=.."], ["name cannot start with '.'"]),
    (["train", "--set", "name=../../etc"], ["name cannot contain a path separator"]),
    (["train", "--set", "name=.hidden"], ["name cannot start with '.'"]),
    (["train", "empty_name.yaml"], ["name must not be empty"]),
    (["train", ".hidden.yaml"], ["the run name '.hidden' (the config file's name)", "--set name="]),
    (["train", "yes_name.yaml"], ["name must be text (quote it: 'yes')"]),
    # a monitor the task does not record: refused before training, listing the task's metrics
    (["train", "--epochs", "1", "--set", "early_stop.monitor=val/accuracy"],
     ["'val/accuracy' is not a metric of the classification task", "did you mean 'val/acc'", "val/loss, val/acc"]),
    (["train", "--data", "plane", "--epochs", "1", "--set", "early_stop.monitor=val/acc"],
     ["not a metric of the regression task", "val/mse, val/rmse, val/mae, val/r2, train/loss"]),
    (["train", "--data", "iris", "--epochs", "1", "--set", "early_stop.monitor=val/top5"],
     ["'val/top5' is not recorded for this data"]),
    # config bombs: one short line, fast
    (["train", "big.yaml"], ["config file 'big.yaml' is 5.2 MB; a recipe is a few KB"]),
    (["train", "bomb.yaml"], ["uses the anchor &a at line 1", "anchors and aliases are not read"]),
    (["train", "alias.yaml"], ["uses the alias *x at line 1"]),
    (["train", "merge.yaml"], ["uses the anchor &base"]),
    (["train", "deep.yaml"], ["nests deeper than 32 levels"]),
    (["train", "--set", "model.name=" + "x" * 3_000_000], ["3,000,011 characters; a config value is at most 10,000"]),
    (["train", "--out", "d" * 200_000], ["out is 200,000 characters long"]),
    (["train", "long_key.yaml"], ["unknown config key 'kkkk"]),
    # unknown keys, at the top and in every section
    (["train", "unknown_top.yaml"], ["unknown config key 'bogus'"]),
    (["train", "unknown_nested.yaml"], ["unknown config key 'train.epoch'", "did you mean 'train.epochs'"]),
    *[(["train", "--set", f"{s}.bogus=1"], [f"unknown config key '{s}.bogus'"]) for s in SECTIONS],
    # a wrong type for each kind of key
    (["train", "--set", "train.epochs=abc"], ["train.epochs must be an integer (got 'abc')"]),
    (["train", "--set", "optim.lr=fast"], ["optim.lr must be a number"]),
    (["train", "--set", "model.batch_norm=maybe"], ["model.batch_norm must be true or false (got 'maybe')"]),
    (["train", "--set", "model.name=[a, b]"], ["model.name must be a single value"]),
    (["train", "--set", "train.batch_size=half"], ["train.batch_size must be a positive integer or 'full'"]),
    (["train", "--set", "model.hidden=[a]"], ["model.hidden must be a list of integers"]),
    (["train", "--set", "optim.betas=[x, y]"], ["optim.betas must be a list of finite numbers"]),
    (["train", "--set", "data.augment={a: 1}"], ["data.augment must be a list like [a, b]"]),
    (["train", "--set", "data.noise=loud"], ["data.noise must be a number"]),
    (["train", "--set", "data.num_workers=two"], ["data.num_workers must be an integer (got 'two')"]),
    (["train", "--set", "data.in_memory=maybe"], ["data.in_memory must be one of auto, true, false (got 'maybe')"]),
    (["train", "--set", "data.in_memory=[true]"], ["data.in_memory must be a single value"]),
    # numbers out of range
    (["train", "--set", "train.epochs=1000000000000000000000"], ["train.epochs must be below 2**63"]),
    (["train", "--set", "model.hidden=[100000000000000000000]"], ["model.hidden must be below 2**63"]),
    (["train", "--lr", "nan"], ["optim.lr must be a finite number"]),
    (["train", "--set", "optim.lr=.inf"], ["optim.lr must be a finite number"]),
    (["train", "--epochs", "-3"], ["train.epochs must be >= 1 (got -3)"]),
    (["train", "--set", "data.num_workers=-1"], ["data.num_workers must be >= 0 (got -1)"]),
    # files that are not recipes
    (["train", "list.yaml"], ["must be a mapping", "list"]),
    (["train", "scalar.yaml"], ["must be a mapping", "int"]),
    (["train", "tabs.yaml"], ["not valid YAML at line 2", "indents with spaces, not tabs"]),
    (["train", "latin1.yaml"], ["config file 'latin1.yaml' is not UTF-8 text (byte 0xe9 at offset 9)"]),
    (["train", "folder.yaml"], ["is a directory"]),
    (["train", "/dev/zero"], ["'/dev/zero' is not a regular file"]),
    (["train", "two_docs.yaml"], ["not valid YAML"]),
    (["train", "python_tag.yaml"], ["not valid YAML", "python/object"]),
    # --set forms
    (["train", "--set", "optim.lr"], ["--set expects dotted.key=value"]),
    (["train", "--set", "=5"], ["--set '=5' has no key before '='"]),
    (["train", "--set", "a.b.c.d=1"], ["unknown config key 'a.b.c.d'"]),
    (["config", "show", "--set", "optim.lrr=0.1"], ["did you mean 'optim.lr'"]),
]

FINE = [  # inputs that look odd but are valid: exit 0, nothing changed
    ["config", "show", "empty.yaml"],
    ["config", "show", "comments.yaml"],
    ["config", "show", "yes_bool.yaml"],
    ["config", "show", "--set", "model.batch_norm=yes", "--set", "name=007", "--set", "seed=4294967295"],
    ["config", "show", "--set", "data.in_memory=false", "--set", "data.num_workers=0"],
    ["--version"],
]


@pytest.mark.parametrize("args, words", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_hostile_config(dlsem, tmp_path, args, words):
    _inputs(tmp_path)
    hostile(dlsem, tmp_path, *args, rc=2, words=words)
    assert not (tmp_path / "runs").exists()  # refused before any run directory


@pytest.mark.parametrize("args", FINE, ids=[" ".join(a) for a in FINE])
def test_odd_but_valid_config(dlsem, tmp_path, args):
    _inputs(tmp_path)
    r = hostile(dlsem, tmp_path, *args, rc=0)
    assert r.out.strip()


def test_resume_with_fewer_epochs_is_refused_in_one_line(dlsem, tmp_path):
    assert dlsem("train", "--data", "iris", "--epochs", "2", "--out", "run", *FAST).rc == 0
    hostile(dlsem, tmp_path, "train", "--resume", "run/last.pt", "--epochs", "1",
            words=["this run already ran 2 epochs; train.epochs 1 is fewer: pass --epochs 3 or more"])
