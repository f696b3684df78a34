"""One random cut of a set of sample ids into two parts, with or without strata, without scikit-learn.

`cut(ids, n_test, seed, labels)` returns exactly what scikit-learn's
`train_test_split(ids, test_size=n_test, random_state=seed, stratify=labels)` returns (an integer
test size): every split this project ever made was drawn by it, and the lessons' figures depend on
which samples landed where, so the draws are the same ones, from the same numpy RandomState stream in
the same order (tests/unit/test_splitting.py compares the two over many sizes, seeds and strata).
Importing scikit-learn costs about half a second, which an image run (shapes, a folder of photos)
now does not pay; the tabular datasets that scikit-learn ships still import it to load themselves.
"""
from __future__ import annotations

import numpy as np


def cut(ids: np.ndarray, n_test: int, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rest, test): n_test of `ids` drawn at random by `seed`, each label in proportion when `labels` is given
    (one per id). ValueError where scikit-learn raises one: no sample left on either side, or a stratum
    too small to be in both (fewer than 2 members, or more strata than samples on a side)."""
    ids = np.asarray(ids)
    n = len(ids)
    n_test = int(n_test)
    if not 0 < n_test < n:
        raise ValueError(f"a test part of {n_test} of {n} samples leaves one side empty")
    n_train = n - n_test
    rng = np.random.RandomState(seed)
    if labels is None:
        order = rng.permutation(n)
        return ids[order[n_test:n_test + n_train]], ids[order[:n_test]]
    classes, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"strata {classes[counts < 2].tolist()} have only 1 member")
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(f"{len(classes)} strata do not fit in parts of {n_train} and {n_test} samples")
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])  # each stratum's positions
    take_train = _share(counts, n_train, rng)
    take_test = _share(counts - take_train, n_test, rng)
    train: list = []
    test: list = []
    for k in range(len(classes)):
        mine = members[k].take(rng.permutation(counts[k]), mode="clip")
        train.extend(mine[:take_train[k]])
        test.extend(mine[take_train[k]:take_train[k] + take_test[k]])
    return ids[rng.permutation(train)], ids[rng.permutation(test)]


def _share(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `draws` each stratum gives: its proportional share rounded down, then one more to
    the strata with the largest remainders (ties drawn at random) until the total is `draws`."""
    exact = counts / counts.sum() * draws
    taken = np.floor(exact)
    missing = int(draws - taken.sum())
    if missing > 0:
        left = exact - taken
        for value in np.sort(np.unique(left))[::-1]:
            (tied,) = np.where(left == value)
            now = min(len(tied), missing)
            taken[rng.choice(tied, size=now, replace=False)] += 1
            missing -= now
            if missing == 0:
                break
    return taken.astype(int)
