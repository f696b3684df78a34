"""Unit tests for dlseminar.datasets: registered datasets, splitting, standardisation, CSV loading."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlseminar import catalog, config
from dlseminar.data import TensorLoader
from dlseminar.datasets import build_data
from dlseminar.errors import ConfigError, DataError
from dlseminar.registry import DATASETS

catalog.load_all()


def _reads_files(name):
    """Datasets that read the user's files or a download cache are tested elsewhere (csv: below)."""
    import inspect

    params = inspect.signature(DATASETS.get(name).fn).parameters
    return bool({"path", "root", "folder", "download"} & set(params))


NAMES = [n for n in DATASETS.names() if n != "csv" and not _reads_files(n)  # everything that builds offline
         and DATASETS.get(n).meta["kind"] != "detection"]  # (box targets: tests/unit/test_detection.py)
TABLES = [n for n in NAMES if DATASETS.get(n).fn.__module__.rsplit(".", 1)[-1] in ("synthetic", "tabular")]
SYNTHETIC = [n for n in TABLES if DATASETS.get(n).fn.__module__.endswith(".synthetic")]
CLASSIFICATION = [n for n in NAMES if DATASETS.get(n).meta["kind"] == "classification"]

_CACHE: dict = {}


def build(*sets, stats=None):
    return build_data(config.resolve(sets=list(sets)), stats)


def cached(name, *extra):
    key = (name, *extra)
    if key not in _CACHE:
        _CACHE[key] = build(f"data.name={name}", *extra)
    return _CACHE[key]


def raw_table(name, seed=0):
    fn = DATASETS.get(name).fn
    return fn(seed=seed) if name in SYNTHETIC else fn()


def rows(X, y):
    """(N, F+1) float64 array of features and label, sorted lexicographically."""
    a = np.concatenate([np.asarray(X, dtype=np.float32).astype(np.float64),
                        np.asarray(y, dtype=np.float32).astype(np.float64).reshape(len(y), -1)], 1)
    return a[np.lexsort(a.T[::-1])]


def test_the_lesson_datasets_are_registered():
    assert {"xor", "linear", "moons", "circles", "spirals", "plane", "fish"} <= set(SYNTHETIC)
    assert {"digits", "iris", "wine", "breast_cancer", "diabetes"} <= set(TABLES) - set(SYNTHETIC)


# --------------------------------------------------------------------------- every dataset


@pytest.mark.parametrize("name", NAMES)
def test_builds_with_consistent_info(name):
    d = cached(name)
    info = d.info
    assert info.name == name
    assert info.kind == DATASETS.get(name).meta["kind"]
    assert {"train", "val"} <= set(d.splits)
    for X, y in d.splits.values():
        assert tuple(X.shape[1:]) == tuple(info.in_shape) and len(X) == len(y) > 0
        assert X.is_floating_point() or X.dtype == torch.uint8
        if X.is_floating_point():
            assert torch.isfinite(X).all()
        if info.kind == "classification":
            assert y.dtype == torch.int64 and y.ndim == 1
            assert 0 <= int(y.min()) and int(y.max()) < info.num_classes
        elif info.kind == "segmentation":  # one class per pixel: masks (N, H, W)
            assert y.dtype == torch.int64 and y.shape == (len(X), *info.in_shape[1:])
            assert 0 <= int(y.min()) and int(y.max()) < info.num_classes
        else:
            assert y.dtype == torch.float32 and y.shape == (len(X), 1)
    if info.kind in ("classification", "segmentation"):
        assert info.num_classes == len(info.class_names) >= 2
    else:
        assert info.num_classes == 0 and info.class_names == []
    if name in TABLES:
        assert set(d.splits) == {"train", "val", "test"}
        assert len(info.in_shape) == 1 and len(info.feature_names) == info.in_shape[0]
        assert all(X.dtype == torch.float32 for X, _ in d.splits.values())


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_is_identical(name):
    a, b = cached(name), build(f"data.name={name}")
    for s in a.splits:
        assert torch.equal(a.splits[s][0], b.splits[s][0])
        assert torch.equal(a.splits[s][1], b.splits[s][1])
    assert a.stats.keys() == b.stats.keys()
    assert all(torch.equal(a.stats[k], b.stats[k]) for k in a.stats)


@pytest.mark.parametrize("name", NAMES)
def test_different_seed_gives_different_split(name):
    a, b = cached(name), build(f"data.name={name}", "seed=1")
    assert a.splits["train"][0].shape == b.splits["train"][0].shape
    assert not torch.equal(a.splits["train"][0], b.splits["train"][0])
    assert not torch.equal(a.splits["val"][0], b.splits["val"][0])


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_data_depends_on_seed(name):
    t0, t1 = raw_table(name, 0), raw_table(name, 1)
    assert not np.array_equal(t0.X, t1.X)
    np.testing.assert_array_equal(t0.X, raw_table(name, 0).X)


@pytest.mark.parametrize("name", TABLES)
def test_splits_partition_the_data_with_requested_sizes(name):
    d = cached(name, "data.standardize=false")
    assert d.stats == {}
    table = raw_table(name)
    N = len(table.y)
    X = torch.cat([d.splits[s][0] for s in ("train", "val", "test")])
    y = torch.cat([d.splits[s][1] for s in ("train", "val", "test")])
    assert len(X) == N
    # the three splits together are exactly the dataset (as a multiset of rows)
    np.testing.assert_array_equal(rows(X.numpy(), y.numpy()), rows(table.X, table.y))
    n_test, n_val = len(d.splits["test"][0]), len(d.splits["val"][0])
    assert abs(n_test - 0.2 * N) <= 1
    assert abs(n_val - 0.2 * N) <= 1
    if name in SYNTHETIC:  # continuous features: rows are unique, so no row may appear in two splits
        seen = [set(map(tuple, d.splits[s][0].tolist())) for s in ("train", "val", "test")]
        assert len(seen[0]) + len(seen[1]) + len(seen[2]) == N
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_custom_split_fractions_and_no_test_split():
    d = build("data.name=iris", "data.val_split=0.3", "data.test_split=0")
    assert set(d.splits) == {"train", "val"}
    assert len(d.splits["val"][0]) == 45 and len(d.splits["train"][0]) == 105
    d = build("data.name=moons", "data.n_samples=200", "data.val_split=0.1", "data.test_split=0.3")
    n_train, n_val, n_test = (len(d.splits[s][0]) for s in ("train", "val", "test"))
    assert n_test == 60 and n_train + n_val == 140
    # val is cut from the rest with fraction val/(1-test) = 0.1/0.7, whose float rounding (20.000000000000004)
    # sklearn rounds up: 21 rather than 20 samples; within one sample of the request
    assert abs(n_val - 20) <= 1


def test_splits_must_leave_training_samples():
    with pytest.raises(ConfigError, match="sum < 1"):
        build("data.name=iris", "data.val_split=0.6", "data.test_split=0.5")


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_splits_are_stratified(name):
    d = cached(name)
    y_all = torch.cat([d.splits[s][1] for s in d.splits])
    k = d.info.num_classes
    overall = torch.bincount(y_all, minlength=k).double() / len(y_all)
    for s, (_, y) in d.splits.items():
        frac = torch.bincount(y, minlength=k).double() / len(y)
        assert (frac - overall).abs().max() <= 0.05, (s, frac, overall)


@pytest.mark.parametrize("name", TABLES)
def test_standardisation_uses_train_only_stats(name):
    d = cached(name)
    Xtr = d.splits["train"][0].double()
    raw = cached(name, "data.standardize=false").splits["train"][0].double()
    varying = raw.std(0, unbiased=False) > 1e-9
    assert Xtr.mean(0).abs().max() < 1e-5
    np.testing.assert_allclose(Xtr.std(0, unbiased=False)[varying].numpy(), 1.0, atol=1e-4)
    assert torch.all(Xtr[:, ~varying] == 0)  # constant columns (digits' blank pixels) stay 0, not NaN
    # the stats are the train split's own, in float64
    assert d.stats["mean"].dtype == torch.float64
    np.testing.assert_allclose(d.stats["mean"].numpy(), raw.mean(0).numpy(), rtol=1e-6, atol=1e-6)
    # val and test are transformed with the same stats, so they are not exactly centred
    Xval = d.splits["val"][0].double()
    assert Xval.mean(0).abs().max() > 1e-4
    raw_val = cached(name, "data.standardize=false").splits["val"][0].double()
    expect = (raw_val - d.stats["mean"]) / d.stats["std"]
    np.testing.assert_allclose(Xval.numpy(), expect.numpy(), atol=1e-5)


def test_given_stats_replace_fitting():
    d = cached("iris")
    stats = {"mean": torch.zeros(4, dtype=torch.float64), "std": torch.full((4,), 2.0, dtype=torch.float64)}
    e = build("data.name=iris", stats=stats)
    raw = cached("iris", "data.standardize=false")
    assert torch.allclose(e.splits["val"][0], raw.splits["val"][0] / 2)
    # stats from a checkpoint reproduce the original tensors exactly
    f = build("data.name=iris", "seed=0", stats=d.stats)
    assert torch.equal(f.splits["test"][0], d.splits["test"][0])
    with pytest.raises(DataError, match="4 features but the checkpoint was trained on 64"):
        build("data.name=iris", stats=cached("digits").stats)


def test_xor_clusters_equal_across_splits():
    d = cached("xor", "data.standardize=false")
    assert d.info.class_names == ["0", "1"]
    for s, (X, y) in d.splits.items():
        bits = X.round().clamp(0, 1).long()
        corner = bits[:, 0] * 2 + bits[:, 1]
        counts = torch.bincount(corner, minlength=4)
        assert counts.min() == counts.max() == len(X) // 4, (s, counts)
        assert torch.equal(y, bits[:, 0] ^ bits[:, 1])  # the label is x1 XOR x2


def test_digits_shape():
    d = cached("digits")
    n = sum(len(X) for X, _ in d.splits.values())
    assert n == 1797
    assert d.info.in_shape == (64,)
    assert d.info.num_classes == 10
    assert d.info.class_names == [str(i) for i in range(10)]


def test_n_samples_and_noise_reach_the_generator():
    d = build("data.name=circles", "data.n_samples=100", "data.noise=0")
    assert sum(len(X) for X, _ in d.splits.values()) == 100
    d = build("data.name=circles", "data.n_samples=100", "data.noise=0", "data.standardize=false")
    r = torch.cat([X for X, _ in d.splits.values()]).norm(dim=1)
    # radii are exactly 1 or 0.5 without noise
    assert torch.all(torch.minimum((r - 1).abs(), (r - 0.5).abs()) < 1e-5)


def test_task_override():
    d = build("data.name=iris", "task=regression")
    assert d.info.kind == "regression" and d.splits["train"][1].shape[1] == 1
    assert d.splits["train"][1].dtype == torch.float32
    with pytest.raises(ConfigError, match="real-valued targets"):
        build("data.name=plane", "task=classification")


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="did you mean 'iris'"):
        build("data.name=irs")


# --------------------------------------------------------------------------- TensorLoader


def test_tensor_loader_batches_and_shuffle():
    X, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    full = TensorLoader(X, y, "full", shuffle=True)
    assert len(full) == 1 and torch.equal(next(iter(full))[0], X)
    big = TensorLoader(X, y, 100, shuffle=True)
    assert len(big) == 1
    ld = TensorLoader(X, y, 3, shuffle=True, seed=5)
    assert len(ld) == 3
    b0 = list(ld)
    assert [len(b[0]) for b in b0] == [3, 3, 4]  # a trailing batch of one is folded in
    assert sorted(torch.cat([b[1] for b in b0]).tolist()) == list(range(10))
    for xb, yb in b0:
        assert torch.equal(xb[:, 0].long(), yb)  # x and y stay paired
    assert all(torch.equal(a[1], b[1]) for a, b in zip(b0, list(ld)))  # same epoch: same order
    ld.set_epoch(1)
    assert not torch.equal(torch.cat([b[1] for b in ld]), torch.cat([b[1] for b in b0]))
    plain = TensorLoader(X, y, 4, shuffle=False)
    assert torch.equal(torch.cat([b[1] for b in plain]), y)


# --------------------------------------------------------------------------- CSV


def csv_data(tmp_path, text, *sets, name="d.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return build("data.name=csv", f"data.path={p}", "data.standardize=false", *sets), p


def csv_error(tmp_path, text, *sets, name="d.csv"):
    p = tmp_path / name
    if text is not None:
        p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as e:
        build("data.name=csv", f"data.path={p}", *sets)
    return str(e.value), p


def regression_csv(n=40):
    rng = np.random.RandomState(0)
    lines = ["x1,x2,price"]
    for _ in range(n):
        a, b = rng.uniform(-1, 1, 2)
        lines.append(f"{a:.6f},{b:.6f},{2 * a - b + 0.123:.6f}")
    return "\n".join(lines) + "\n"


def test_csv_numeric_target_is_regression(tmp_path):
    d, _ = csv_data(tmp_path, regression_csv())
    assert d.info.kind == "regression"
    assert d.info.feature_names == ["x1", "x2"] and d.info.target_name == "price"
    assert d.info.in_shape == (2,)
    X, y = d.splits["train"]
    assert y.shape == (len(X), 1)
    np.testing.assert_allclose(y[:, 0].numpy(), (2 * X[:, 0] - X[:, 1] + 0.123).numpy(), atol=1e-4)
    assert sum(len(X) for X, _ in d.splits.values()) == 40


def label_csv(labels=("versicolor", "setosa", "apple"), n=30, header="a,b,c,species"):
    lines = [header]
    for i in range(n):
        lines.append(f"{i},{i * 10},{-i},{labels[i % len(labels)]}")
    return "\n".join(lines) + "\n"


def test_csv_text_labels_are_sorted_classes(tmp_path):
    d, _ = csv_data(tmp_path, label_csv())
    info = d.info
    assert info.kind == "classification"
    assert info.class_names == ["apple", "setosa", "versicolor"]
    assert info.num_classes == 3 and info.target_name == "species"
    labels = ("versicolor", "setosa", "apple")
    for X, y in d.splits.values():
        for row, cls in zip(X.tolist(), y.tolist()):
            assert info.class_names[cls] == labels[int(row[0]) % 3]


def test_csv_integer_labels_sort_numerically(tmp_path):
    d, _ = csv_data(tmp_path, label_csv(labels=("10", "2", "1")))
    assert d.info.class_names == ["1", "2", "10"]
    for X, y in d.splits.values():
        for row, cls in zip(X.tolist(), y.tolist()):
            assert d.info.class_names[cls] == ("10", "2", "1")[int(row[0]) % 3]
    # the task can force regression on integer labels
    d, _ = csv_data(tmp_path, label_csv(labels=("10", "2", "1")), "task=regression")
    assert d.info.kind == "regression"


def test_csv_features_subset_and_target(tmp_path):
    d, _ = csv_data(tmp_path, label_csv(), "data.features=[c, a]")
    assert d.info.feature_names == ["c", "a"] and d.info.in_shape == (2,)
    X, _ = d.splits["train"]
    assert torch.equal(X[:, 0], -X[:, 1])
    d, _ = csv_data(tmp_path, regression_csv(), "data.target=x1", "data.features=[price]")
    assert d.info.kind == "regression" and d.info.target_name == "x1" and d.info.feature_names == ["price"]


def test_csv_bom_and_whitespace(tmp_path):
    text = "\ufeff x , y \n" + "".join(f" {i} , {'ab'[i % 2]} \n" for i in range(20))
    d, _ = csv_data(tmp_path, text)
    assert d.info.feature_names == ["x"] and d.info.target_name == "y" and d.info.class_names == ["a", "b"]


def test_csv_missing_file(tmp_path):
    msg, p = csv_error(tmp_path, None, name="missing.csv")
    assert "not found" in msg and "missing.csv" in msg


def test_csv_needs_path():
    with pytest.raises(DataError, match="needs data.path"):
        build("data.name=csv")


def test_csv_directory(tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        build("data.name=csv", f"data.path={tmp_path}")


def test_csv_empty_file(tmp_path):
    msg, _ = csv_error(tmp_path, "")
    assert "is empty" in msg
    msg, _ = csv_error(tmp_path, "\n  \n,,\n")
    assert "is empty" in msg


def test_csv_header_only(tmp_path):
    msg, _ = csv_error(tmp_path, "x1,x2,y\n")
    assert "header but no data rows" in msg


def test_csv_unknown_target_column(tmp_path):
    msg, _ = csv_error(tmp_path, regression_csv(), "data.target=cost")
    assert "no column 'cost'" in msg and "x1, x2, price" in msg


def test_csv_unknown_feature_column(tmp_path):
    msg, _ = csv_error(tmp_path, regression_csv(), "data.features=[x1, x3]")
    assert "no column 'x3'" in msg


def test_csv_target_also_feature(tmp_path):
    msg, _ = csv_error(tmp_path, regression_csv(), "data.features=[x1, price]")
    assert "both the target and a feature" in msg


def test_csv_non_numeric_feature_names_line_and_column(tmp_path):
    lines = regression_csv().splitlines()
    lines[3] = "0.5,abc,1.0"  # the file's 4th line (header is line 1)
    msg, p = csv_error(tmp_path, "\n".join(lines) + "\n")
    assert f"{p}: line 4, column 'x2': 'abc' is not a number" in msg


@pytest.mark.parametrize("cell", ["nan", "inf", "", " "])
def test_csv_non_finite_or_empty_feature_rejected(tmp_path, cell):
    lines = regression_csv().splitlines()
    lines[2] = f"{cell},0.1,1.0"
    msg, _ = csv_error(tmp_path, "\n".join(lines) + "\n")
    assert "line 3, column 'x1'" in msg


def test_csv_empty_target(tmp_path):
    lines = regression_csv().splitlines()
    lines[5] = "0.1,0.2,"
    msg, _ = csv_error(tmp_path, "\n".join(lines) + "\n")
    assert "line 6, column 'price': the target is empty" in msg


def test_csv_text_in_regression_target(tmp_path):
    lines = regression_csv().splitlines()
    lines[5] = "0.1,0.2,lots"
    msg, _ = csv_error(tmp_path, "\n".join(lines) + "\n", "task=regression")
    assert "line 6, column 'price': 'lots' is not a number" in msg


def test_csv_line_numbers_count_blank_lines(tmp_path):
    lines = regression_csv().splitlines()
    lines.insert(2, "")  # a blank 3rd line
    lines[4] = "0.5,abc,1.0"  # the file's 5th line
    msg, _ = csv_error(tmp_path, "\n".join(lines) + "\n")
    assert "line 5, column 'x2'" in msg


def test_csv_ragged_row(tmp_path):
    lines = regression_csv().splitlines()
    lines[7] = "0.1,0.2"
    msg, _ = csv_error(tmp_path, "\n".join(lines) + "\n")
    assert "line 8 has 2 cells, the header has 3" in msg
    lines[7] = "0.1,0.2,0.3,0.4"
    msg, _ = csv_error(tmp_path, "\n".join(lines) + "\n")
    assert "line 8 has 4 cells" in msg


def test_csv_single_class(tmp_path):
    msg, _ = csv_error(tmp_path, label_csv(labels=("same",)))
    assert "single class" in msg and "'species'" in msg


def test_csv_too_few_rows(tmp_path):
    msg, _ = csv_error(tmp_path, "x,y\n1,a\n2,b\n3,a\n4,b\n")
    assert "only 4 samples" in msg


def test_csv_not_utf8_is_read_as_windows_1252_with_a_note(tmp_path, capsys):
    p = tmp_path / "latin.csv"
    colours = ("wei\u00df", "gr\u00fcn")
    p.write_bytes(("gr\u00f6\u00dfe,farbe\n" + "".join(f"{i},{colours[i % 2]}\n" for i in range(20))).encode("cp1252"))
    d = build("data.name=csv", f"data.path={p}")
    assert d.info.feature_names == ["gr\u00f6\u00dfe"] and d.info.class_names == ["gr\u00fcn", "wei\u00df"]
    assert "is not UTF-8" in capsys.readouterr().err


def test_training_loader_folds_a_last_batch_of_one():
    import torch
    from dlseminar.data import TensorLoader

    train = TensorLoader(torch.zeros(65, 2), torch.zeros(65), 32, shuffle=True)
    assert [len(y) for _, y in train] == [32, 33] and len(train) == 2
    evaluation = TensorLoader(torch.zeros(65, 2), torch.zeros(65), 32, shuffle=False)
    assert [len(y) for _, y in evaluation] == [32, 32, 1] and len(evaluation) == 3
