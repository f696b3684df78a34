"""Same seed, same weights; every epoch its own order and its own augmentation."""
from __future__ import annotations

import hashlib

import torch

from dlseminar.config import resolve
from dlseminar.data import TensorLoader
from dlseminar.run import train


def _hash(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_three_runs_with_one_seed_give_one_weight_hash(tmp_path):
    sets = ["data.name=shapes", "data.n_samples=60", "data.image_size=12", "model.name=cnn", "model.dropout=0.3",
            "data.augment=hflip,crop", "train.epochs=2", "train.batch_size=8", "logging.plots=false",
            "train.deterministic=true"]
    hashes = set()
    for i in range(3):
        run_dir, _ = train(resolve(sets=sets + [f"out={tmp_path / str(i)}"]))
        hashes.add(_hash(torch.load(run_dir / "last.pt", weights_only=True)["model"]))
    assert len(hashes) == 1
    run_dir, _ = train(resolve(sets=sets + ["seed=1", f"out={tmp_path / 'other'}"]))
    assert _hash(torch.load(run_dir / "last.pt", weights_only=True)["model"]) not in hashes


def test_each_epoch_has_its_own_order_and_a_resumed_epoch_the_same_one():
    X, y = torch.arange(40).float().unsqueeze(1), torch.arange(40)
    loader = TensorLoader(X, y, 8, shuffle=True, seed=3)

    def order(epoch):
        loader.set_epoch(epoch)
        return torch.cat([yb for _, yb in loader]).tolist()

    orders = [order(e) for e in range(1, 6)]
    assert len({tuple(o) for o in orders}) == 5  # no epoch replays another's order
    assert all(sorted(o) == list(range(40)) for o in orders)
    assert order(3) == orders[2]  # what a resume of epoch 3 sees
