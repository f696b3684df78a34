"""Unit tests for engine/checkpoint.py: atomic writes, safe loading, RNG state."""
from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from dlseminar.engine import checkpoint as ck
from dlseminar.errors import CheckpointError, UserError


def valid(**extra):
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    d = {"format_version": ck.FORMAT_VERSION, "config": {"optim": {"lr": 0.1}, "name": "x"},
         "model": lin.state_dict(), "epoch": 3, "stats": {"mean": torch.zeros(3, dtype=torch.float64)},
         "history": [{"epoch": 1, "val/loss": 0.5}],
         "data_info": {"name": "toy", "kind": "classification", "in_shape": [3], "num_classes": 2}, "data_stats": {}}
    d.update(extra)
    return d


def temps(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(ck.TMP_PREFIX)]


def load_error(path) -> str:
    with pytest.raises(CheckpointError) as e:
        ck.load(path)
    assert isinstance(e.value, UserError)
    return str(e.value)


# --------------------------------------------------------------------------- save


def test_save_then_load_round_trip(tmp_path):
    p = tmp_path / "last.pt"
    d = valid()
    ck.save(d, p)
    assert temps(tmp_path) == []
    got = ck.load(p)
    assert got["epoch"] == 3 and got["config"] == d["config"] and got["history"] == d["history"]
    for k, v in d["model"].items():
        assert torch.equal(got["model"][k], v)
    assert got["stats"]["mean"].dtype == torch.float64


def test_save_replaces_atomically(tmp_path):
    p = tmp_path / "best.pt"
    ck.save(valid(epoch=1), p)
    ck.save(valid(epoch=2), p)
    assert ck.load(p)["epoch"] == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == ["best.pt"]


def test_failed_save_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "last.pt"
    ck.save(valid(epoch=1), p)
    with pytest.raises(Exception):
        ck.save({"format_version": 1, "config": {}, "model": {}, "bad": lambda: None}, p)  # lambdas do not pickle
    assert temps(tmp_path) == []
    assert ck.load(p)["epoch"] == 1  # the old checkpoint is intact


def test_save_writes_temp_in_the_same_folder(tmp_path, monkeypatch):
    seen = {}
    real = os.replace

    def spy(src, dst):
        seen["src"], seen["dst"] = str(src), str(dst)
        assert os.path.getsize(src) > 0  # fully written before the rename
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ck.save(valid(), tmp_path / "a.pt")
    assert os.path.dirname(seen["src"]) == str(tmp_path)
    assert os.path.basename(seen["src"]).startswith(ck.TMP_PREFIX + "a.pt.")
    assert seen["dst"] == str(tmp_path / "a.pt")


def test_remove_stale_temps(tmp_path):
    (tmp_path / (ck.TMP_PREFIX + "last.pt.abc")).write_bytes(b"half")
    (tmp_path / "last.pt").write_bytes(b"keep")
    ck.remove_stale_temps(tmp_path)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["last.pt"]


# --------------------------------------------------------------------------- load: everything else is CheckpointError


def test_load_missing(tmp_path):
    assert "not found" in load_error(tmp_path / "nope.pt")


def test_load_random_bytes(tmp_path):
    p = tmp_path / "r.pt"
    p.write_bytes(np.random.RandomState(0).bytes(4096))
    assert "is not a PyTorch file" in load_error(p)


def test_load_text_file(tmp_path):
    p = tmp_path / "t.pt"
    p.write_text("epochs: 3\n")
    assert "is a text file, not a checkpoint" in load_error(p)


def test_load_zero_bytes(tmp_path):
    p = tmp_path / "z.pt"
    p.write_bytes(b"")
    assert "empty (0 bytes)" in load_error(p)


def test_load_directory(tmp_path):
    assert "is a directory" in load_error(tmp_path)
    ck.save(valid(), tmp_path / "best.pt")
    assert "did you mean best.pt or last.pt" in load_error(tmp_path)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.1])
def test_load_truncated(tmp_path, fraction):
    full = tmp_path / "full.pt"
    ck.save(valid(), full)
    data = full.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert "is truncated or corrupt" in load_error(cut)


class Evil:
    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))  # unpickling would create the sentinel file


def test_load_refuses_to_run_code_from_torch_zip(tmp_path):
    sentinel = tmp_path / "PWNED"
    p = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "config": {}, "model": {}, "x": Evil(sentinel)}, p)
    assert not sentinel.exists()  # saving did not call it
    msg = load_error(p)
    assert "holds code objects" in msg
    assert not sentinel.exists()


def test_load_refuses_to_run_code_from_plain_pickle(tmp_path):
    sentinel = tmp_path / "PWNED2"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"format_version": 1, "config": {}, "model": {}, "x": Evil(sentinel)}))
    load_error(p)
    assert not sentinel.exists()
    # the payload is real: plain pickle would have created the file
    pickle.loads(p.read_bytes()).get("x").close()
    assert sentinel.exists()


@pytest.mark.parametrize(
    "obj",
    [
        {"config": {}, "model": {}},  # no format_version
        {"format_version": 1, "model": {}},  # no config
        {"format_version": 1, "config": {}},  # no model
        [1, 2, 3],
        torch.zeros(3),
        {"weight": torch.zeros(2, 2)},  # a bare state_dict
    ],
)
def test_load_torch_file_that_is_not_ours(tmp_path, obj):
    p = tmp_path / "other.pt"
    torch.save(obj, p)
    assert "not a dlseminar checkpoint" in load_error(p)


def test_load_newer_format(tmp_path):
    p = tmp_path / "new.pt"
    torch.save(valid(format_version=ck.FORMAT_VERSION + 1), p)
    assert "upgrade" in load_error(p)


@pytest.mark.parametrize("version", ["1", None, [1]])
def test_load_non_integer_format_version(tmp_path, version):
    p = tmp_path / "weird.pt"
    torch.save(valid(format_version=version), p)
    assert "invalid format_version" in load_error(p)


# --------------------------------------------------------------------------- RNG state


def draws():
    return (torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)],
            np.random.randint(0, 1000, 3).tolist(), torch.randint(0, 1000, (3,)).tolist())


def test_rng_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    draws()  # move away from the seeds
    state = ck.rng_state()
    a = draws()
    ck.set_rng_state(state)
    assert draws() == a


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(5)
    np.random.seed(6)
    random.seed(7)
    state = ck.rng_state()
    assert all(v is None or isinstance(v, (torch.Tensor, int, float, list)) for v in state.values())
    a = draws()
    ck.save(valid(rng=state), tmp_path / "last.pt")
    draws()
    ck.set_rng_state(ck.load(tmp_path / "last.pt")["rng"])
    assert draws() == a


def test_rng_state_round_trip_with_cached_gaussians():
    np.random.seed(0)
    random.seed(0)
    np.random.randn()  # the legacy Box-Muller generator now caches the second value
    random.gauss(0, 1)  # so does Python's
    state = ck.rng_state()
    a = (np.random.randn(3).tolist(), [random.gauss(0, 1) for _ in range(3)])
    ck.set_rng_state(state)
    assert (np.random.randn(3).tolist(), [random.gauss(0, 1) for _ in range(3)]) == a
