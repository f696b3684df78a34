"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 through torchvision, read from data.root.

The files are read from torchvision's own layout under data.root (data/MNIST/raw/...,
data/FashionMNIST/raw/..., data/cifar-10-batches-py/..., data/cifar-100-python/...).
Nothing is downloaded unless data.download is true; then torchvision downloads once
(no retries of our own, sockets time out) and any failure is one `error:` line.
The official test set is kept as the test split; validation is carved from the train set.
"""
from __future__ import annotations

import contextlib
import pickle
import socket
from pathlib import Path

import torch

from ..console import note
from ..errors import DataError
from ..registry import DATASETS
from ..tasks.classification.data import Images
from .images import resize

NET_TIMEOUT_S = 30.0  # per socket operation while downloading; torchvision sets none
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def one_line(e: BaseException, limit: int = 220) -> str:
    """An exception's message on one line of at most `limit` characters (its type when it has none)."""
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def socket_timeout(seconds: float):
    """Within the block, sockets opened without their own timeout give up after `seconds`."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _mnist_layout(cls, root: str) -> tuple[Path, list[Path]]:
    raw = Path(root) / cls.__name__ / "raw"
    return raw, [raw / f for f in MNIST_FILES]


def _mnist_present(cls, root: str) -> bool:
    _, files = _mnist_layout(cls, root)
    processed = Path(root) / cls.__name__ / "processed"
    legacy = all((processed / f).is_file() for f in ("training.pt", "test.pt"))  # torchvision's old cache
    return legacy or all(f.is_file() for f in files)


def _cifar_layout(cls, root: str) -> tuple[Path, list[Path]]:
    folder = Path(root) / cls.base_folder
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return folder, [folder / n for n in names]


def _cifar_present(cls, root: str) -> bool:
    return all(f.is_file() for f in _cifar_layout(cls, root)[1])


def _load(name: str, cls, root: str, download: bool, layout, present):
    """(train, test) torchvision datasets, or a one-line DataError saying what to do."""
    root = str(root)
    folder, files = layout(cls, root)
    where = str(folder)
    expected = ", ".join(f.name for f in files)
    if not present(cls, root) and not download:
        raise DataError(f"{name} not found under {where} (expects {expected}); put the files there "
                        f"or pass --set data.download=true (needs the network)")
    if download and not present(cls, root):
        note(f"downloading {name} into {root} (once; later runs read it from there)")
    try:
        with socket_timeout(NET_TIMEOUT_S) if download else contextlib.nullcontext():
            train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=False)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; torchvision raises RuntimeError too
        if download and (isinstance(e, OSError) or not present(cls, root)):
            raise DataError(f"downloading {name} into {root} failed: {one_line(e)}; check the network, "
                            f"or put the files under {where} yourself") from None
        if not present(cls, root):
            raise DataError(f"{name} not found under {where} (expects {expected}); put the files there "
                            f"or pass --set data.download=true (needs the network)") from None
        if isinstance(e, OSError):
            raise DataError(f"cannot read the {name} files under {where}: {one_line(e, 120)}") from None
        hint = ("delete them and pass --set data.download=true to fetch them again" if not download
                else "delete them and try again")
        raise DataError(f"{name} files under {where} are corrupted or incomplete ({one_line(e, 120)}); "
                        f"{hint}, or put the original files there") from None
    except (AssertionError, TypeError, ValueError, KeyError, IndexError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(f"cannot read the {name} files under {where}: "
                        f"{one_line(e, 120) if str(e) else type(e).__name__}") from None
    return train, test


def _mnist_like(name: str, cls, root, download, image_size) -> Images:
    train, test = _load(name, cls, root, download, _mnist_layout, _mnist_present)

    def xy(ds):
        X = torch.as_tensor(ds.data, dtype=torch.uint8)
        if X.ndim != 3:
            raise DataError(f"the {name} image files under {root} hold {X.ndim}-d arrays, expected (N, H, W)")
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        if len(y) != len(X):
            raise DataError(f"the {name} files under {root} hold {len(X)} images but {len(y)} labels")
        return resize(X.unsqueeze(1).contiguous(), image_size), y

    X, y = xy(train)
    classes = [str(c) for c in train.classes]
    X_test, y_test = xy(test)
    _check_labels(name, root, classes, y, y_test)
    return Images(X, y, classes, scale=255.0, test=(X_test, y_test))


def _cifar_like(name: str, cls, root, download, image_size) -> Images:
    train, test = _load(name, cls, root, download, _cifar_layout, _cifar_present)

    def xy(ds):
        X = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        if len(y) != len(X):
            raise DataError(f"the {name} files under {root} hold {len(X)} images but {len(y)} labels")
        return resize(X, image_size), y

    X, y = xy(train)
    classes = [str(c) for c in train.classes]
    X_test, y_test = xy(test)
    _check_labels(name, root, classes, y, y_test)
    return Images(X, y, classes, scale=255.0, test=(X_test, y_test))


def _check_labels(name, root, classes, *ys):
    for y in ys:
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise DataError(f"the {name} files under {root} have labels outside 0..{len(classes) - 1}")


def _tv():
    import torchvision.datasets as tvd

    return tvd


@DATASETS.register("mnist", kind="classification")
def mnist(root="data", download=False, image_size=None):
    """MNIST handwritten digits, 1x28x28, 10 classes; from data.root (data.download=true fetches it)."""
    return _mnist_like("mnist", _tv().MNIST, root, download, image_size)


@DATASETS.register("fashion_mnist", kind="classification")
def fashion_mnist(root="data", download=False, image_size=None):
    """Fashion-MNIST clothing images, 1x28x28, 10 classes; from data.root (data.download=true fetches it)."""
    return _mnist_like("fashion_mnist", _tv().FashionMNIST, root, download, image_size)


@DATASETS.register("cifar10", kind="classification")
def cifar10(root="data", download=False, image_size=None):
    """CIFAR-10 colour photos, 3x32x32, 10 classes; from data.root (data.download=true fetches it)."""
    return _cifar_like("cifar10", _tv().CIFAR10, root, download, image_size)


@DATASETS.register("cifar100", kind="classification")
def cifar100(root="data", download=False, image_size=None):
    """CIFAR-100 colour photos, 3x32x32, 100 fine classes; from data.root (data.download=true fetches it)."""
    return _cifar_like("cifar100", _tv().CIFAR100, root, download, image_size)


__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100"]
