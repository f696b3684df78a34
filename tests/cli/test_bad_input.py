"""Every user mistake: exit 2, exactly one `error:` line on stderr, no traceback."""
from __future__ import annotations

import pickle

import pytest
import torch

from conftest import CONFIGS


def _files(tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  name: [mlp\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "typo.yaml").write_text("optim:\n  lrr: 0.1\n")
    (tmp_path / "text.csv").write_text("a,b,y\n1,2,0\n3,oops,1\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "zero.pt").write_bytes(b"")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format_version": 1, "config": {}, "model": Evil()}))


CASES = [
    # (arguments, words the error line must contain)
    (["train", "--set", "optim.lrr=0.1"], ["unknown config key", "did you mean 'optim.lr'"]),
    (["train", "typo.yaml"], ["unknown config key 'optim.lrr'", "did you mean"]),
    (["train", "--epochs", "abc"], ["epochs"]),
    (["train", "--set", "train.epochs=abc"], ["train.epochs must be an integer"]),
    (["train", "--lr", "-0.1"], ["optim.lr must be > 0"]),
    (["train", "--batch-size", "0"], ["train.batch_size must be >= 1"]),
    (["train", "--batch-size", "many"], ["train.batch_size must be a positive integer or 'full'"]),
    (["train", "--dropout", "1.5"], ["model.dropout must be in [0, 1)"]),
    (["train", "missing.yaml"], ["config file 'missing.yaml' not found"]),
    (["train", "bad.yaml"], ["not valid YAML", "line"]),
    (["train", "list.yaml"], ["must be a mapping"]),
    (["train", "--model", "resnett"], ["unknown model 'resnett'"]),
    (["train", "--model", "perceptronn"], ["did you mean 'perceptron'"]),
    (["train", "--data", "digitz"], ["unknown dataset 'digitz'", "did you mean 'digits'"]),
    (["train", "--loss", "cross"], ["unknown loss 'cross'"]),
    (["train", "--optimizer", "adamm"], ["unknown optimizer 'adamm'", "did you mean 'adam'"]),
    (["train", "--data", "plane", "--loss", "ce"], ["does not fit a regression task"]),
    (["train", "--device", "cuda:7"], ["device cuda:7"]),
    (["train", "--data", "csv"], ["needs data.path"]),
    (["train", "--data", "csv", "--set", "data.path=nope.csv"], ["CSV file 'nope.csv' not found"]),
    (["train", "--data", "csv", "--set", "data.path=text.csv"], ["line 3", "column 'b'", "'oops' is not a number"]),
    (["train", "--data", "csv", "--set", "data.path=empty.csv"], ["is empty"]),
    (["train", "--data", "csv", "--set", "data.path=text.csv", "--set", "data.target=z"], ["no column 'z'"]),
    (["train", "--bogus"], ["No such option"]),
    (["eval", "missing.pt"], ["not found"]),
    (["eval", "random.pt"], ["not a readable dlseminar checkpoint"]),
    (["eval", "zero.pt"], ["empty"]),
    (["eval", "plain.pt"], ["not a dlseminar checkpoint"]),
    (["eval", "notes.txt"], ["not a readable dlseminar checkpoint"]),
    (["eval", "evil.pt"], ["not a readable dlseminar checkpoint"]),
    (["eval", "."], ["is a directory"]),
    (["train", "--resume", "random.pt"], ["not a readable dlseminar checkpoint"]),
    (["config", "show", "--set", "model.hiden=[3]"], ["did you mean 'model.hidden'"]),
    (["train", "--set", "model.batch_norm=true", "--batch-size", "1"], ["batch norm needs batches of 2 or more"]),
    (["train", "--data", "digits_images", "--model", "alexnet", "--set", "model.stem=imagenet"], ["needs inputs of at least"]),
    (["models", "show", "cnn", "--input", "3by32"], ["--input must look like 3x32x32"]),
    (["predict", "missing.pt", "x.png"], ["not found"]),
    (["train", "--data", "digits_images", "--model", "resnet18", "--pretrained"], ["not in the local cache"]),
]


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_with_one_error_line(dlsem, tmp_path, args, words):
    _files(tmp_path)
    r = dlsem(*args)
    assert r.rc == 2, r
    assert "Traceback" not in r.err and "Traceback" not in r.out, r
    lines = [ln for ln in r.err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "PWNED").exists()  # a checkpoint can never run code
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_checkpoint_for_other_data_is_refused(dlsem, tmp_path):
    assert dlsem("train", CONFIGS / "xor_mlp.yaml", "--epochs", "2", "--out", "run",
                 "--set", "logging.plots=false").rc == 0
    r = dlsem("eval", "run/best.pt", "--data", "digits")
    assert r.rc == 2 and "error: dataset 'digits' has 64 features but the checkpoint was trained on 2" in r.err, r
    r = dlsem("train", "--resume", "run/best.pt")
    assert r.rc == 2 and "last.pt" in r.err, r
    r = dlsem("train", "--resume", "run/last.pt", "--set", "model.hidden=[4]")
    assert r.rc == 2 and "cannot change model.hidden" in r.err, r
    r = dlsem("train", "--out", "run", "--epochs", "1")
    assert r.rc == 2 and "--overwrite" in r.err, r
