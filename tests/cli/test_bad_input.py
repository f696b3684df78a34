"""Every user mistake: exit 2, exactly one `error:` line on stderr, no traceback.

The table runs through dlseminar.cli.main() inside the test process (the `dlsem` fixture: what
`python -m dlseminar` calls, minus a 3-second interpreter start per case); any exception that
escapes main() is the traceback a user would have seen and fails the case. A few cases also
run as real subprocesses.
"""
from __future__ import annotations

import pickle
import sys

import numpy as np
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
    torch.save({"format_version": 1, "config": {}, "model": {}, "x": Evil()}, tmp_path / "evil_zip.pt")
    torch.save({"format_version": 1, "config": {}, "model": {}, "x": np.array([{"a": 1}], dtype=object)},
               tmp_path / "numpy_object.pt")
    torch.save({"format_version": 1, "config": {}, "model": {}, "x": np.float64(1.5)}, tmp_path / "numpy_scalar.pt")
    good = {"format_version": 1, "model": {}, "data_stats": {"mean": torch.zeros(64), "std": torch.ones(64)},
            "data_info": {"name": "digits", "kind": "classification", "in_shape": [64], "num_classes": 10}}
    # import paths where names belong: looked up in the registries, never imported or called
    torch.save({**good, "config": {"model": {"name": "os.system"}}}, tmp_path / "import_model.pt")
    torch.save({**good, "config": {"data": {"name": "subprocess:Popen"}}}, tmp_path / "import_data.pt")
    # a last.pt that fits the default MLP (64 -> 128 -> 10) and carries what a resume restores: only the name is wrong
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    resumable = {"model": mlp.state_dict(), "optimizer": {}, "scheduler": {}, "early_stopping": {}, "epoch": 1,
                 "step": 1, "history": [], "rng": {}}
    torch.save({**good, "config": {"optim": {"name": "builtins.eval"}}, **resumable}, tmp_path / "import_optim.pt")
    whole = (tmp_path / "plain.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "header.csv").write_text("a,b,y\n")


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
    (["eval", "random.pt"], ["is not a PyTorch file"]),
    (["eval", "zero.pt"], ["empty"]),
    (["eval", "plain.pt"], ["not a dlseminar checkpoint"]),
    (["eval", "notes.txt"], ["is a text file, not a checkpoint"]),
    (["eval", "evil.pt"], ["is a Python pickle", "never loads pickles"]),
    (["eval", "evil_zip.pt"], ["holds code objects", "refuses to load"]),
    (["eval", "numpy_object.pt"], ["holds code objects", "numpy"]),
    (["eval", "numpy_scalar.pt"], ["holds code objects", "numpy"]),
    (["eval", "truncated.pt"], ["is truncated or corrupt"]),
    (["eval", "import_model.pt"], ["unknown model 'os.system'"]),
    (["eval", "import_data.pt"], ["unknown dataset 'subprocess:Popen'"]),
    (["train", "--resume", "import_optim.pt"], ["unknown optimizer 'builtins.eval'"]),
    (["predict", "evil_zip.pt", "x.png"], ["holds code objects"]),
    (["train", "--data", "csv", "--set", "data.path=header.csv"], ["header.csv"]),
    (["eval", "."], ["is a directory"]),
    (["train", "--resume", "random.pt"], ["is not a PyTorch file"]),
    (["config", "show", "--set", "model.hiden=[3]"], ["did you mean 'model.hidden'"]),
    (["train", "--set", "model.batch_norm=true", "--batch-size", "1"], ["batch norm needs batches of 2 or more"]),
    (["train", "--data", "digits_images", "--model", "alexnet", "--set", "model.stem=imagenet"], ["needs inputs of at least"]),
    (["models", "show", "cnn", "--input", "3by32"], ["--input must look like 3x32x32"]),
    (["predict", "missing.pt", "x.png"], ["not found"]),
    (["train", "--data", "digits_images", "--model", "resnet18", "--pretrained"], ["not in the local cache"]),
]


def check_one_error_line(r, words, tmp_path):
    assert r.rc == 2, r
    assert "Traceback" not in r.err and "Traceback" not in r.out, r
    lines = [ln for ln in r.err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "PWNED").exists()  # a checkpoint can never run code
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_with_one_error_line(dlsem, tmp_path, args, words):
    _files(tmp_path)
    check_one_error_line(dlsem(*args), words, tmp_path)  # in process: see conftest.dlsem


REAL = [(["eval", "evil.pt"], ["is a Python pickle"]),
        (["train", "typo.yaml"], ["unknown config key 'optim.lrr'"]),
        (["train", "--data", "csv", "--set", "data.path=text.csv"], ["line 3", "column 'b'"])]


@pytest.mark.parametrize("args,words", REAL, ids=[" ".join(a) for a, _ in REAL])
def test_bad_input_in_a_real_process(dlsem, tmp_path, args, words):
    _files(tmp_path)
    check_one_error_line(dlsem(*args, real=True), words, tmp_path)


def test_checkpoint_for_other_data_is_refused(dlsem, tmp_path):
    assert dlsem("train", CONFIGS / "xor_mlp.yaml", "--epochs", "2", "--out", "run",
                 "--set", "logging.plots=false").rc == 0
    r = dlsem("eval", "run/best.pt", "--data", "digits")
    assert r.rc == 2 and ("error: dataset 'digits' has inputs of 64 features and 10 classes (0, 1, 2, ...) "
                          "but the checkpoint was trained on 2 features and 2 classes (xor)") in r.err, r
    r = dlsem("train", "--resume", "run/best.pt")
    assert r.rc == 2 and "last.pt" in r.err, r
    r = dlsem("train", "--resume", "run/last.pt", "--set", "model.hidden=[4]")
    assert r.rc == 2 and "cannot change model.hidden" in r.err, r
    r = dlsem("train", "--out", "run", "--epochs", "1")
    assert r.rc == 2 and "--overwrite" in r.err, r


def _file_size_limit(limit: int):
    """For a subprocess: files may not grow past `limit` bytes (what a full disk looks like to a write)."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_during_a_run_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    import subprocess

    base = [sys.executable, "-m", "dlseminar", "train"]
    ok = subprocess.run(base + [str(CONFIGS / "digits_mlp.yaml"), "--epochs", "2", "--out", "run", "--set",
                                "logging.plots=false"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    before = (tmp_path / "run/last.pt").read_bytes()
    r = subprocess.run(base + ["--resume", "run/last.pt", "--epochs", "4", "--set", "checkpoint.min_interval_s=0"],
                       cwd=tmp_path, capture_output=True, text=True, preexec_fn=_file_size_limit(20_000))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write checkpoint"), r.stderr
    assert "is the disk full" in lines[0] and "the previous one is kept" in lines[0]
    assert (tmp_path / "run/last.pt").read_bytes() == before  # the last good checkpoint, whole
    assert not list((tmp_path / "run").glob(".tmp-*"))
