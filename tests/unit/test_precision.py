"""Speed settings of the Trainer: train.precision (bf16/fp16), channels_last, accumulate, compile errors."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest
import torch

from dlseminar.config import resolve
from dlseminar.engine import amp
from dlseminar.engine.net import compile_error as _compile_error
from dlseminar.errors import ConfigError
from dlseminar.run import train

QUIET = ["early_stop.patience=0", "logging.plots=false", "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0",
         "device=cpu"]
# the bundled 8x8 digit images through a small CNN with batch norm
CNN = ["data.name=digits_images", "model.name=cnn", "model.widths=[8,16]", "train.batch_size=64", *QUIET]
# moons: 120 training samples = 7 batches of 16 + 8, or 15 batches of 8 (the same groups)
MLP = ["data.name=moons", "data.n_samples=200", "model.name=mlp", "model.hidden=[16]", "model.dropout=0",
       "optim.name=sgd", "optim.lr=0.1", "sched.name=cosine", "train.epochs=3", *QUIET]


def _rows(d: Path):
    with open(d / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def _weights(d: Path):
    return torch.load(d / "last.pt", weights_only=True)["model"]


def test_bf16_autocast_trains_a_cnn_on_the_cpu(tmp_path):
    run, s = train(resolve(sets=CNN + ["train.precision=bf16", "train.epochs=2", f"out={tmp_path / 'r'}"]))
    rows = _rows(run)
    assert all(math.isfinite(float(r["train/loss"])) for r in rows)
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])  # it learns
    assert s.test["test/acc"] > 0.5 and all(v.dtype == torch.float32 for v in _weights(run).values() if v.is_floating_point())


def test_fp16_grad_scaler_state_round_trips_through_last_pt(tmp_path):
    sets = MLP + ["train.precision=16", "optim.name=adam", "optim.lr=0.01", "sched.name=none"]
    full, _ = train(resolve(sets=sets + [f"out={tmp_path / 'full'}"]))
    part, _ = train(resolve(sets=sets + ["train.epochs=1", f"out={tmp_path / 'part'}"]))
    saved = torch.load(part / "last.pt", weights_only=True)["scaler"]
    assert saved["scale"] > 0 and set(saved) >= {"scale", "_growth_tracker"}
    # a scaler that had grown or backed off: the resumed run must continue from it, not from a fresh 65536
    ck = torch.load(part / "last.pt", weights_only=True)
    ck["scaler"] = dict(saved, scale=1024.0, _growth_tracker=7)
    torch.save(ck, part / "last.pt")
    from dlseminar.engine import trainer as trainer_mod

    seen = {}
    orig = trainer_mod.Trainer.restore

    def restore(self, d):
        orig(self, d)
        seen.update(self.scaler.state_dict())

    trainer_mod.Trainer.restore = restore
    try:
        train(None, resume=str(part / "last.pt"), named={"epochs": 3})
    finally:
        trainer_mod.Trainer.restore = orig
    assert seen["scale"] == 1024.0 and seen["_growth_tracker"] == 7
    assert torch.load(part / "last.pt", weights_only=True)["scaler"]["scale"] > 0
    # and an unmodified fp16 checkpoint resumes exactly
    shutil.rmtree(part)
    part, _ = train(resolve(sets=sets + ["train.epochs=1", f"out={tmp_path / 'part'}"]))
    train(None, resume=str(part / "last.pt"), named={"epochs": 3})
    assert _rows(part) == _rows(full)
    assert all(torch.equal(a, b) for a, b in zip(_weights(part).values(), _weights(full).values()))


def test_accumulating_two_batches_of_8_equals_one_batch_of_16(tmp_path):
    big, _ = train(resolve(sets=MLP + ["train.batch_size=16", f"out={tmp_path / 'big'}"]))
    acc, _ = train(resolve(sets=MLP + ["train.batch_size=8", "train.accumulate=2", f"out={tmp_path / 'acc'}"]))
    a, b = _weights(big), _weights(acc)
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
    la, lb = torch.load(big / "last.pt", weights_only=True), torch.load(acc / "last.pt", weights_only=True)
    assert la["step"] == lb["step"] == 3 * 8  # optimizer steps, which the lr schedule counts
    assert la["scheduler"]["step_count"] == lb["scheduler"]["step_count"]
    for ra, rb in zip(_rows(big), _rows(acc)):
        assert ra["lr"] == rb["lr"]
        assert math.isclose(float(ra["train/loss"]), float(rb["train/loss"]), rel_tol=1e-5)
    with pytest.raises(ConfigError, match="--resume cannot change train.accumulate"):
        train(None, resume=str(acc / "last.pt"), sets=["train.accumulate=1"])


def test_accumulation_resumes_mid_epoch_exactly(tmp_path):
    sets = MLP + ["train.batch_size=8", "train.accumulate=3", "checkpoint.every_n_steps=2"]
    full, _ = train(resolve(sets=sets + [f"out={tmp_path / 'full'}"]))
    from dlseminar.engine import checkpoint as ckpt

    copies, orig = [], ckpt.save

    def keep(obj, path):
        orig(obj, path)
        if Path(path).name == "last.pt" and obj["batch_in_epoch"] and not copies:
            copies.append(tmp_path / "mid.pt")
            shutil.copy(path, copies[0])

    ckpt.save = keep
    try:
        train(resolve(sets=sets + [f"out={tmp_path / 'other'}"]))
    finally:
        ckpt.save = orig
    mid = torch.load(copies[0], weights_only=True)
    assert mid["batch_in_epoch"] % 3 == 0  # checkpoints fall between optimizer steps
    d = tmp_path / "resumed"
    d.mkdir()
    shutil.copy(copies[0], d / "last.pt")
    train(None, resume=str(d / "last.pt"))
    assert _rows(d) == _rows(full)
    assert all(torch.equal(a, b) for a, b in zip(_weights(d).values(), _weights(full).values()))


def test_channels_last_gives_the_same_training_within_tolerance(tmp_path):
    plain, _ = train(resolve(sets=CNN + ["train.epochs=1", f"out={tmp_path / 'a'}"]))
    nhwc, _ = train(resolve(sets=CNN + ["train.epochs=1", "train.channels_last=true", f"out={tmp_path / 'b'}"]))
    a, b = _weights(plain), _weights(nhwc)
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-3, atol=1e-4) for k in a)
    w = b["3.weight"]  # the second conv, (16, 8, 3, 3): really stored NHWC
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() and a["3.weight"].is_contiguous()
    ra, rb = _rows(plain)[0], _rows(nhwc)[0]
    assert math.isclose(float(ra["val/loss"]), float(rb["val/loss"]), rel_tol=1e-4)
    # a speed setting: a resume may switch it (and precision) off
    train(None, resume=str(nhwc / "last.pt"), sets=["train.channels_last=false", "train.precision=bf16"], named={"epochs": 2})
    assert len(_rows(nhwc)) == 2


def test_compile_failures_are_one_config_error(tmp_path, monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    class Broken(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            raise TorchDynamoException("no C++ compiler found\nlong details")

    monkeypatch.setattr(torch, "compile", lambda m, **kw: Broken(m))
    with pytest.raises(ConfigError, match=r"train.compile failed \(TorchDynamoException: no C\+\+ compiler found\); train without it"):
        train(resolve(sets=MLP + ["train.compile=true", f"out={tmp_path / 'r'}"]))
    assert _compile_error(TorchDynamoException("x")) and not _compile_error(ValueError("x"))


def test_precision_checks():
    cpu = torch.device("cpu")
    assert amp.autocast_args("32", cpu) is None and amp.make_scaler("32", cpu) is None
    assert amp.autocast_args("bf16", cpu) == ("cpu", torch.bfloat16) and amp.make_scaler("bf16", cpu) is None
    assert amp.make_scaler("16", cpu) is not None
    assert isinstance(amp.cpu_has_native_bf16(), bool)
    with pytest.raises(ConfigError, match="train.precision must be one of 32, bf16, 16"):
        resolve(sets=["train.precision=fp8"])
    with pytest.raises(ConfigError, match="train.accumulate must be >= 1"):
        resolve(sets=["train.accumulate=0"])
