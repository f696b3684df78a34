"""The small helpers kept once (seeding.mix_seed, io.numbered_dir, engine.penalty): they give the
numbers and names the copies they replace gave, so recipes and run directories stay as they were."""
from __future__ import annotations

import pytest
import torch

from dlseminar import io
from dlseminar.engine.distributed import rank_seed
from dlseminar.engine.penalty import penalty_weights, weight_penalty
from dlseminar.seeding import mix_seed


@pytest.mark.parametrize("seed,a,b", [(0, 0, 0), (5, 1, 2), (2**32 - 1, 7, 10**6), (123, 99, 100_002)])
def test_mix_seed_gives_the_numbers_of_the_formulas_it_replaces(seed, a, b):
    # augmentation and DDP dropout streams: ((seed*1_000_003 + a)*100_003 + b) mod 2**64
    assert mix_seed(seed, a, b) == ((seed * 1_000_003 + a) * 100_003 + b) % 2**64 == rank_seed(seed, a, b)
    # the shuffling order of an epoch: seed*100_003 + epoch
    assert mix_seed(seed, a) == seed * 100_003 + a


def test_mix_seed_needs_one_or_two_counters():
    with pytest.raises(ValueError):
        mix_seed(1)
    with pytest.raises(ValueError):
        mix_seed(1, 2, 3, 4)


def test_numbered_dir_takes_the_first_free_name(tmp_path):
    base = tmp_path / "runs" / "x"
    assert io.numbered_dir(base) == base  # absent
    base.mkdir(parents=True)
    assert io.numbered_dir(base) == base  # an empty folder is free
    (base / "metrics.csv").write_text("a")
    (tmp_path / "runs" / "x-2").write_text("a file is taken too")
    assert io.numbered_dir(base) == tmp_path / "runs" / "x-3"
    (tmp_path / "runs" / "x-3").mkdir()
    (tmp_path / "runs" / "x-3" / "sweep.json").write_text("{}")
    # a folder the command may continue is chosen over a later free one
    assert io.numbered_dir(base, reuse=lambda d: (d / "sweep.json").is_file()) == tmp_path / "runs" / "x-3"
    assert io.numbered_dir(base) == tmp_path / "runs" / "x-4"


def test_weight_penalty_skips_biases_and_matches_the_formula():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    weights = penalty_weights(model)
    assert [tuple(w.shape) for w in weights] == [(4, 3), (2, 4)]  # no bias vectors
    l1 = sum(w.abs().sum() for w in weights)
    l2 = sum(w.pow(2).sum() for w in weights)
    assert weight_penalty(weights, 0.0, 0.0) == 0.0
    assert torch.equal(weight_penalty(weights, 0.1, 0.0), 0.1 * l1)
    assert torch.equal(weight_penalty(weights, 0.1, 0.01), 0.1 * l1 + 0.01 * l2)
