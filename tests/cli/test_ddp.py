"""Several processes, one run: torchrun (gloo on the CPU) and `dlsem train --devices N` against one process.

The same global batch gives the same metrics and weights as one process (within float rounding,
no dropout), only rank 0 writes, and a last.pt resumes under another number of processes.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import CONFIGS, metrics_rows, read_summary
from dlseminar.config import resolve
from dlseminar.data import TensorLoader
from dlseminar.errors import ConfigError
from dlseminar.run import train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is needed")

# digits MLP without dropout; shuffled batches of 64 (1078 training samples: the last batch has 54)
SETS = ["model.dropout=0", "train.batch_size=64", "early_stop.patience=0", "logging.plots=false",
        "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0", "device=cpu"]
ARGS = [str(CONFIGS / "digits_mlp.yaml"), "--epochs", "3", *[a for s in SETS for a in ("--set", s)]]
TOL = 1e-5


def _env():
    # one thread per process on a small machine; RANK etc. must not leak in from an outer torchrun
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return dict(env, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def _run(cmd, cwd, timeout=180):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert p.returncode == 0, f"rc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def _close_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) and [r.keys() for r in a] == [r.keys() for r in b]
    for ra, rb in zip(a, b):
        for k in ra:
            x, y = float(ra[k]), float(rb[k])
            assert math.isclose(x, y, rel_tol=TOL, abs_tol=TOL), (ra["epoch"], k, x, y)


def _close_weights(a: Path, b: Path) -> None:
    wa, wb = torch.load(a, weights_only=True)["model"], torch.load(b, weights_only=True)["model"]
    assert wa.keys() == wb.keys() and not any(k.startswith("module.") for k in wa)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=TOL, atol=TOL), (k, (wa[k] - wb[k]).abs().max())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, in this process: 3 epochs, then resumed to 4 (ref3 keeps the 3-epoch last.pt)."""
    root = tmp_path_factory.mktemp("ref")
    run3, _ = train(resolve(CONFIGS / "digits_mlp.yaml", SETS + ["train.epochs=3", f"out={root / 'ref3'}"]))
    shutil.copytree(run3, root / "ref4")
    train(None, resume=str(root / "ref4/last.pt"), named={"epochs": 4})
    return root / "ref3", root / "ref4"


def test_torchrun_two_processes_equal_one_and_resume_in_one_process(reference, tmp_path):
    ref3, ref4 = reference
    p = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "dlseminar", "train", *ARGS], tmp_path)
    runs = list((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["digits_mlp"]  # rank 0 chose and made the one run directory
    run = runs[0]
    assert sorted(f.name for f in run.iterdir()) == ["best.pt", "config.yaml", "last.pt", "metrics.csv", "plots", "summary.json"]
    assert p.stdout.count("run directory:") == 1 and p.stdout.count("epoch 3/3") == 1  # rank 0 alone talks
    _close_rows(metrics_rows(run), metrics_rows(ref3))
    _close_weights(run / "last.pt", ref3 / "last.pt")
    s, r = read_summary(run), read_summary(ref3)
    assert s["processes"] == 2 and r["processes"] == 1
    assert all(math.isclose(s["test"][k], r["test"][k], rel_tol=TOL, abs_tol=TOL) for k in r["test"])

    # the 2-process last.pt continues in one process as the 1-process run did
    train(None, resume=str(run / "last.pt"), named={"epochs": 4})
    _close_rows(metrics_rows(run), metrics_rows(ref4))
    _close_weights(run / "last.pt", ref4 / "last.pt")


def test_devices_launcher_resumes_a_one_process_run_in_two(reference, tmp_path):
    ref3, ref4 = reference
    shutil.copytree(ref3, tmp_path / "run")
    p = _run([sys.executable, "-m", "dlseminar", "train", "--resume", "run/last.pt", "--epochs", "4", "--devices", "2"],
             tmp_path)
    assert p.stdout.count("run directory:") == 1 and "error" not in p.stderr
    assert read_summary(tmp_path / "run")["processes"] == 2
    _close_rows(metrics_rows(tmp_path / "run"), metrics_rows(ref4))
    _close_weights(tmp_path / "run/last.pt", ref4 / "last.pt")


def test_devices_launcher_sigint_leaves_a_last_checkpoint(tmp_path):
    cmd = [sys.executable, "-m", "dlseminar", "train", *ARGS, "--epochs", "500", "--batch-size", "8", "--out", "run",
           "--devices", "2"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    csv = tmp_path / "run/metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or len(csv.read_text().splitlines()) < 2) and p.poll() is None:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)  # what a Ctrl-C on the terminal does to dlsem (torchrun has its own session)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 130, (out, err)
    assert err.count("resume with: dlsem train --resume") == 1, err
    ck = torch.load(tmp_path / "run/last.pt", weights_only=True)
    assert 1 <= ck["epoch"] < 500 and not list((tmp_path / "run").glob(".tmp-*"))
    assert len(metrics_rows(tmp_path / "run")) == ck["epoch"]


def test_shard_gives_each_rank_its_part_of_every_global_batch():
    X, y = torch.arange(50.0)[:, None], torch.arange(50)

    def batches(world, rank=0):
        ld = TensorLoader(X, y, 16, shuffle=True, seed=3)
        if world > 1:
            ld.shard(rank, world)
        ld.set_epoch(2)
        return len(ld), [yb for _, yb in ld]

    n1, whole = batches(1)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3 * 100_003 + 2))
    assert n1 == 4 and [b.tolist() for b in whole] == [perm[a:b].tolist() for a, b in ((0, 16), (16, 32), (32, 48), (48, 50))]
    for world, expect in ((2, whole), (3, [perm[:16], perm[16:32], perm[32:]])):  # 3 processes: the last 2 samples join the batch before
        parts = [batches(world, r) for r in range(world)]
        assert all(n == len(expect) for n, _ in parts)
        for i, b in enumerate(expect):
            got = [p[1][i] for p in parts]
            assert torch.equal(torch.cat(got), b)  # rank 0's part, then rank 1's, ...: the global batch in order
            assert max(map(len, got)) - min(map(len, got)) <= 1
    with pytest.raises(ConfigError, match="smaller than the 4 processes"):
        TensorLoader(X, y, 3, shuffle=True).shard(0, 4)
