"""Unit tests for the file-backed image datasets: mnist/fashion_mnist/cifar10/cifar100 (vision.py) and folder.

No network: the MNIST idx-ubyte files and CIFAR pickles are written here in the real on-disk
formats and read through torchvision. MNIST is only checked for presence by torchvision, so
fake files load as they are. CIFAR files are checked against fixed MD5 sums that small fake
files cannot match: the tests that load CIFAR replace torchvision's `check_integrity` in
torchvision.datasets.cifar with an existence check (the product code does not), and one test
keeps the real check to show a mismatch becomes a DataError.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from dlseminar import catalog, config
from dlseminar.datasets import build_data
from dlseminar.errors import ConfigError, DataError

catalog.load_all()


# --------------------------------------------------------------------------- writers (real formats)

def write_idx(path: Path, arr: np.ndarray) -> None:
    """An IDX file as on yann.lecun.com: big-endian magic (0x08 = uint8, then ndim) and dims, then bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = 0x0800 | arr.ndim  # 2051 for images (3-d), 2049 for labels (1-d)
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + arr.tobytes())


def make_mnist(root: Path, folder: str = "MNIST", n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.RandomState(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(y)
        X = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        X[:, 0, 0] = y * 10  # a label-dependent pixel, so images and labels must stay paired
        raw = root / folder / "raw"
        write_idx(raw / f"{split}-images-idx3-ubyte", X)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y)
        out[split] = (X, y)
    return out


def make_cifar(root: Path, hundred: bool = False, per_batch: int = 12, n_test: int = 20, seed: int = 0) -> dict:
    """CIFAR python pickles: dicts with 'data' (N, 3072) uint8 rows (R plane, G plane, B plane) and labels."""
    rng = np.random.RandomState(seed)
    k = 100 if hundred else 10
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "fine_labels" if hundred else "labels"

    def batch(n):
        X = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        y = [int(v) for v in rng.randint(0, k, n)]
        y[:2] = [0, k - 1]
        return {"batch_label": b"fake", label_key: y, "data": X, "filenames": [b"x.png"] * n}

    train_names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    train = [batch(per_batch * (5 if hundred else 1)) for _ in train_names]
    test = batch(n_test)
    for name, b in zip(train_names, train):
        (folder / name).write_bytes(pickle.dumps(b))
    (folder / ("test" if hundred else "test_batch")).write_bytes(pickle.dumps(test))
    names = [f"class_{i:02d}" for i in range(k)]
    meta = {"fine_label_names": names, "coarse_label_names": ["c"]} if hundred else {"label_names": names}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta))
    return {"train": (np.vstack([b["data"] for b in train]), sum((b[label_key] for b in train), [])),
            "test": (test["data"], test[label_key]), "names": names}


@pytest.fixture
def cifar_md5_off(monkeypatch):
    """torchvision checks CIFAR files against the real MD5 sums; fake files are only checked to exist."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.fixture
def network(monkeypatch):
    """The network, failing: every urlopen raises URLError; `calls` lists the URLs asked for."""
    calls = []

    def fail(req, *a, **k):
        calls.append(getattr(req, "full_url", req))
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    return calls


def build(**sets):
    return build_data(config.resolve(sets=[f"{k.replace('__', '.')}={v}" for k, v in sets.items()]))


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg, msg
    return msg


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST

@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like_reads_real_idx_files(tmp_path, name, folder, network):
    import torchvision.datasets as tvd

    written = make_mnist(tmp_path, folder)
    d = build(data__name=name, data__root=tmp_path, data__val_split=0.25)
    cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
    assert d.info.in_shape == (1, 28, 28) and d.info.num_classes == 10
    assert d.info.class_names == list(cls.classes)
    Xt, yt = d.splits["test"]  # the official test set, untouched and in order
    assert Xt.dtype == torch.uint8 and yt.dtype == torch.int64
    assert torch.equal(Xt, torch.from_numpy(written["t10k"][0]).unsqueeze(1))
    assert yt.tolist() == written["t10k"][1].tolist()
    # train + val are a split of the official train set, pairs kept
    Xtr = torch.cat([d.splits["train"][0], d.splits["val"][0]])
    ytr = torch.cat([d.splits["train"][1], d.splits["val"][1]])
    assert len(d.splits["val"][0]) == 15 and len(Xtr) == 60
    assert torch.equal(Xtr[:, 0, 0, 0].long(), ytr * 10)
    assert sorted(map(bytes, Xtr.numpy())) == sorted(map(bytes, written["train"][0][:, None]))
    assert d.stats["mean"].shape == (1, 1, 1) and float(d.stats["scale"]) == 255.0
    assert network == []  # files present: nothing downloaded, even if download were allowed


def test_mnist_image_size_resizes_train_and_test(tmp_path):
    make_mnist(tmp_path)
    d = build(data__name="mnist", data__root=tmp_path, data__image_size=14)
    assert d.info.in_shape == (1, 14, 14)
    assert d.splits["train"][0].shape[1:] == (1, 14, 14) and d.splits["test"][0].shape[1:] == (1, 14, 14)
    assert d.splits["test"][0].dtype == torch.uint8


def test_mnist_present_with_download_true_does_not_touch_the_network(tmp_path, network):
    make_mnist(tmp_path)
    d = build(data__name="mnist", data__root=tmp_path, data__download="true")
    assert len(d.splits["test"][0]) == 20 and network == []


@pytest.mark.parametrize("name,where", [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"),
                                        ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_files_without_download_is_one_line_and_offline(tmp_path, name, where, network):
    with pytest.raises(DataError) as e:
        build(data__name=name, data__root=tmp_path / "data")
    msg = one_line(e)
    assert msg.startswith(f"{name} not found under {tmp_path / 'data' / where}"), msg
    assert "--set data.download=true" in msg
    assert network == []  # download=false never goes to the network


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_download_with_failing_network_is_one_line_data_error(tmp_path, name, network, capsys):
    with pytest.raises(DataError) as e:
        build(data__name=name, data__root=tmp_path / "data", data__download="true")
    msg = one_line(e)
    assert msg.startswith(f"downloading {name} into {tmp_path / 'data'} failed"), msg
    assert "no network in tests" in msg and "check the network" in msg
    assert network, "download=true should have tried the network"
    assert all(u.startswith("http") for u in network)
    assert len(network) <= 8  # torchvision's own mirrors/http fallback, no retry loop of ours
    assert f"downloading {name}" in capsys.readouterr().err


def test_download_uses_a_socket_timeout_and_restores_it(tmp_path, monkeypatch):
    import socket

    seen = []

    def fail(req, *a, **k):
        seen.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("down")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError):
        build(data__name="cifar10", data__root=tmp_path, data__download="true")
    assert seen and all(t is not None and t > 0 for t in seen)  # a blackholed network cannot hang the run
    assert socket.getdefaulttimeout() == before


def test_malformed_mnist_files_are_a_data_error(tmp_path):
    make_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    # labels where the images should be: torchvision's reader raises ValueError (1-d, not 3-d)
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-labels-idx1-ubyte").read_bytes())
    with pytest.raises(DataError) as e:
        build(data__name="mnist", data__root=tmp_path)
    assert one_line(e).startswith(f"cannot read the mnist files under {raw}")


def test_mnist_labels_and_images_of_different_length_are_a_data_error(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(59, np.uint8))
    with pytest.raises(DataError) as e:
        build(data__name="mnist", data__root=tmp_path)
    assert "60 images but 59 labels" in one_line(e)


# --------------------------------------------------------------------------- CIFAR

@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_reads_real_pickles(tmp_path, hundred, cifar_md5_off, network):
    name = "cifar100" if hundred else "cifar10"
    w = make_cifar(tmp_path, hundred)
    d = build(data__name=name, data__root=tmp_path, data__val_split=0.2)
    assert d.info.in_shape == (3, 32, 32) and d.info.class_names == w["names"]
    assert d.info.num_classes == (100 if hundred else 10)
    Xt, yt = d.splits["test"]
    assert Xt.dtype == torch.uint8 and yt.dtype == torch.int64
    # channel-first, planes in R, G, B order exactly as in the pickle rows
    assert torch.equal(Xt, torch.from_numpy(w["test"][0]).view(-1, 3, 32, 32))
    assert yt.tolist() == list(w["test"][1])
    n_train = sum(len(d.splits[s][0]) for s in ("train", "val"))
    assert n_train == len(w["train"][1]) == 60
    assert d.stats["mean"].shape == (3, 1, 1)
    assert network == []


def test_cifar_image_size(tmp_path, cifar_md5_off):
    make_cifar(tmp_path)
    d = build(data__name="cifar10", data__root=tmp_path, data__image_size=16)
    assert d.info.in_shape == (3, 16, 16) and d.splits["test"][0].shape[1:] == (3, 16, 16)


def test_cifar_files_failing_torchvisions_md5_check_are_a_data_error(tmp_path, network):
    make_cifar(tmp_path)  # right names and format, wrong MD5 sums: torchvision's real check refuses them
    where = tmp_path / "cifar-10-batches-py"
    before = {p.name: p.read_bytes() for p in where.iterdir()}
    with pytest.raises(DataError) as e:
        build(data__name="cifar10", data__root=tmp_path)
    msg = one_line(e)
    assert msg.startswith(f"cifar10 files under {where} are corrupted or incomplete"), msg
    assert "data.download=true" in msg
    assert network == []
    assert {p.name: p.read_bytes() for p in where.iterdir()} == before


def test_corrupt_cifar_with_download_true_tries_once_and_fails_cleanly(tmp_path, network):
    make_cifar(tmp_path)
    with pytest.raises(DataError) as e:
        build(data__name="cifar10", data__root=tmp_path, data__download="true")
    assert one_line(e).startswith("downloading cifar10")
    assert 1 <= len(network) <= 4


def test_unreadable_cifar_pickle_is_a_data_error(tmp_path, cifar_md5_off):
    make_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError) as e:
        build(data__name="cifar10", data__root=tmp_path)
    assert one_line(e).startswith("cannot read the cifar10 files")


# --------------------------------------------------------------------------- folder

def _img(path: Path, mode: str, size: tuple[int, int], value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        a = np.full((size[1], size[0]), value * 257, dtype=np.uint16)
        a[0, 0] = 65535
        Image.fromarray(a).save(path)
        return
    colour = {"L": value, "RGB": (value, 255 - value, 7), "RGBA": (value, value, value, 255),
              "P": value}[mode]
    Image.new(mode, size, colour).save(path)


def make_tree(root: Path, per_class: int = 4) -> None:
    modes = [("L", (40, 25)), ("RGB", (97, 131)), ("RGBA", (16, 16)), ("P", (33, 20)), ("I;16", (21, 30))]
    for k, cls in enumerate(["bird", "cat", "dog"]):
        for i in range(per_class):
            mode, size = modes[(i + k) % len(modes)]
            _img(root / cls / f"{i:02d}.png", mode, size, 40 + 80 * k)


def files_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_folder_loads_classes_sizes_and_modes(tmp_path):
    from dlseminar.datasets.folder import folder

    make_tree(tmp_path / "pics")
    (tmp_path / "pics" / "dog" / "nested").mkdir()
    _img(tmp_path / "pics" / "dog" / "nested" / "deep.jpg", "RGB", (50, 60), 200)
    before = files_digest(tmp_path / "pics")
    img = folder(path=str(tmp_path / "pics"), image_size=12, channels=3)
    assert img.class_names == ["bird", "cat", "dog"]
    assert img.X.shape == (13, 3, 12, 12) and img.X.dtype == torch.uint8 and img.scale == 255.0
    assert img.y.tolist() == [0] * 4 + [1] * 4 + [2] * 5 and img.y.dtype == torch.int64
    # flat colours survive decoding and resizing: bird (40) darker than dog (200) in channel 0
    assert int(img.X[0, 0].float().mean().round()) == 40
    assert files_digest(tmp_path / "pics") == before  # nothing written to the user's folder


def test_folder_grayscale_default_size_and_through_build_data(tmp_path):
    make_tree(tmp_path / "pics", per_class=5)
    d = build(data__name="folder", data__path=tmp_path / "pics", data__channels=1)
    assert d.info.in_shape == (1, 32, 32) and d.info.class_names == ["bird", "cat", "dog"]
    assert sum(len(x) for x, _ in d.splits.values()) == 15 and set(d.splits) == {"train", "val", "test"}


@pytest.mark.parametrize("setup,expect", [
    (None, "dataset folder needs data.path"),
    ("missing", "not found"),
    ("file", "is not a folder"),
    ("flat", "no class sub-folders"),
    ("one", "only one class sub-folder ('cat')"),
    ("emptyclass", "has no images"),
])
def test_folder_errors_are_one_line(tmp_path, setup, expect):
    from dlseminar.datasets.folder import folder

    root = tmp_path / "pics"
    if setup == "file":
        root.write_text("x")
    elif setup == "flat":
        _img(root / "a.png", "RGB", (8, 8), 1)
    elif setup == "one":
        _img(root / "cat" / "a.png", "RGB", (8, 8), 1)
    elif setup == "emptyclass":
        make_tree(root)
        (root / "zebra").mkdir()
        (root / "zebra" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError) as e:
        folder(path=None if setup is None else str(root))
    msg = one_line(e)
    assert expect in msg, msg
    if setup == "emptyclass":
        assert str(root / "zebra") in msg


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(range(200))])
def test_folder_bad_image_names_file_or_is_skipped_with_one_note(tmp_path, content, capsys):
    from dlseminar.datasets.folder import folder

    root = tmp_path / "pics"
    make_tree(root)
    bad = root / "cat" / "broken.png"
    bad.write_bytes(content)
    (root / "dog" / "also_bad.jpg").write_bytes(b"garbage" * 10)
    before = files_digest(root)
    with pytest.raises(DataError) as e:
        folder(path=str(root), image_size=8)
    msg = one_line(e)
    assert str(bad) in msg and "data.skip_bad=true" in msg, msg
    img = folder(path=str(root), image_size=8, skip_bad=True)
    assert len(img.y) == 12 and img.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    err = capsys.readouterr().err
    assert err.count("note: skipped") == 1 and f"skipped 2 unreadable images (first: {bad})" in err, err
    assert files_digest(root) == before


def test_folder_class_with_only_bad_images_fails_even_when_skipping(tmp_path):
    from dlseminar.datasets.folder import folder

    make_tree(tmp_path / "pics")
    (tmp_path / "pics" / "emu").mkdir()
    (tmp_path / "pics" / "emu" / "x.png").write_bytes(b"")
    with pytest.raises(DataError) as e:
        folder(path=str(tmp_path / "pics"), skip_bad=True)
    assert "emu" in one_line(e) and "no readable images" in str(e.value)


def test_folder_ignores_loose_and_hidden_files_with_a_note(tmp_path, capsys):
    from dlseminar.datasets.folder import folder

    root = tmp_path / "pics"
    make_tree(root)
    _img(root / "loose.png", "RGB", (8, 8), 3)
    (root / ".DS_Store").write_bytes(b"\0\1")
    (root / "cat" / "._00.png").write_bytes(b"appledouble")  # would be unreadable if not skipped
    (root / "cat" / ".thumbs").mkdir()
    (root / "cat" / ".thumbs" / "t.png").write_bytes(b"cache")
    (root / ".hidden_class").mkdir()
    _img(root / ".hidden_class" / "a.png", "RGB", (8, 8), 3)
    img = folder(path=str(root), image_size=8)
    assert img.class_names == ["bird", "cat", "dog"] and len(img.y) == 12
    err = capsys.readouterr().err
    assert "ignored 1 file at the top of" in err and "loose.png" in err, err


def test_folder_channels_must_be_1_or_3(tmp_path):
    from dlseminar.datasets.folder import folder

    make_tree(tmp_path / "pics")
    with pytest.raises(ConfigError):
        folder(path=str(tmp_path / "pics"), channels=4)


def test_eval_of_a_checkpoint_trained_without_standardisation(tmp_path):
    """standardize: false stores only the scale; eval must rebuild the data from that (was a KeyError)."""
    from dlseminar.config import resolve
    from dlseminar.inference import evaluate
    from dlseminar.run import train

    cfg = resolve(sets=["data.name=shapes", "data.n_samples=40", "data.image_size=16", "model.name=cnn",
                        "data.standardize=false", "train.epochs=1", "logging.plots=false", f"out={tmp_path / 'r'}"])
    run_dir, summary = train(cfg)
    result, _, _ = evaluate(str(run_dir / "best.pt"), "test")
    assert result == summary.test
