"""data/splitting.cut draws exactly the samples scikit-learn's train_test_split draws (the splits every
recipe's figures were measured on), and fails where it fails."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from dlseminar.data.splitting import cut

CASES = [  # (n, n_test, number of strata or None, seed)
    (n, t, k, seed)
    for n, t in [(5, 1), (10, 3), (37, 7), (100, 20), (150, 30), (1797, 360), (3000, 600), (1001, 1)]
    for k in (None, 2, 3, 4, 10)
    for seed in (0, 1, 42, 2**32 - 1)
    if k is None or 2 * k <= n
]


@pytest.mark.parametrize("n,n_test,k,seed", CASES)
def test_the_same_draw_as_scikit_learn(n, n_test, k, seed):
    ids = np.arange(100, 100 + n)  # ids that are not positions: the result must be ids
    labels = None
    if k is not None:
        labels = np.random.RandomState(n + k).randint(0, k, n)  # uneven strata, ties in their shares
        labels[:2 * k] = np.repeat(np.arange(k), 2)  # every stratum has 2 members at least
    try:
        want = train_test_split(ids, test_size=n_test, random_state=seed, stratify=labels)
    except ValueError:
        with pytest.raises(ValueError):
            cut(ids, n_test, seed, labels)
        return
    got = cut(ids, n_test, seed, labels)
    assert [g.tolist() for g in got] == [w.tolist() for w in want]


def test_string_strata_and_refusals_as_scikit_learn():
    ids = np.arange(12)
    labels = np.array(["cat", "dog", "dog", "cat", "eel", "eel", "dog", "cat", "eel", "dog", "cat", "eel"])
    want = train_test_split(ids, test_size=4, random_state=3, stratify=labels)
    assert [g.tolist() for g in cut(ids, 4, 3, labels)] == [w.tolist() for w in want]
    for n_test, strata in [(0, None), (12, None), (2, labels), (4, np.array([0] * 11 + [1]))]:
        with pytest.raises(ValueError):
            train_test_split(ids, test_size=n_test or 0.0, random_state=0, stratify=strata)
        with pytest.raises(ValueError):
            cut(ids, n_test, 0, strata)
