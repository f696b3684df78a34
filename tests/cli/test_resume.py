"""--resume continues exactly, and Ctrl-C keeps the work."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from conftest import CONFIGS, ROOT, metrics_rows, read_summary

COMMON = ["--set", "logging.plots=false", "--set", "checkpoint.min_interval_s=0"]


def test_resume_with_more_epochs_equals_one_long_run(dlsem, tmp_path):
    cfg = CONFIGS / "moons_mlp_dropout.yaml"  # shuffling and dropout both draw random numbers
    assert dlsem("train", cfg, "--epochs", "12", "--patience", "0", "--out", "full", *COMMON).rc == 0
    assert dlsem("train", cfg, "--epochs", "5", "--patience", "0", "--out", "part", *COMMON).rc == 0
    r = dlsem("train", "--resume", "part/last.pt", "--epochs", "12")
    assert r.rc == 0, r
    assert metrics_rows(tmp_path / "full") == metrics_rows(tmp_path / "part")
    a = torch.load(tmp_path / "full/last.pt", weights_only=True)
    b = torch.load(tmp_path / "part/last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert read_summary(tmp_path / "full")["test"] == read_summary(tmp_path / "part")["test"]


def test_sigint_writes_last_checkpoint_and_resume_finishes(tmp_path):
    cmd = [sys.executable, "-m", "dlseminar", "train", str(CONFIGS / "digits_mlp.yaml"), "--epochs", "400",
           "--patience", "0", "--batch-size", "1", "--out", "run", *COMMON]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    csv = tmp_path / "run/metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or len(csv.read_text().splitlines()) < 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert "resume with: dlsem train --resume" in err
    ck = torch.load(tmp_path / "run/last.pt", weights_only=True)
    done = ck["epoch"]
    assert 1 <= done < 400
    assert not list((tmp_path / "run").glob(".tmp-*"))
    r = subprocess.run([sys.executable, "-m", "dlseminar", "train", "--resume", "run/last.pt", "--epochs", str(done + 1)],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(metrics_rows(tmp_path / "run")) == done + 1
    assert read_summary(tmp_path / "run")["epochs_run"] == done + 1
