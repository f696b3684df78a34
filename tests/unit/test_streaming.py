"""Unit tests for streamed image data (data.in_memory): Files, the StreamLoader against the in-memory
loaders batch for batch, exact statistics, the auto choice, and files that break while streaming.

The in-memory loaders are the reference: for the same files a streamed loader must give the same
samples in the same order (shuffle, DDP shard, folded last batch, a resumed epoch's start), the
same augmented pixels and the same normalisation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlseminar import catalog, config, memory
from dlseminar.data import TensorLoader
from dlseminar.data.augment import Augment
from dlseminar.data.core import BatchNorm
from dlseminar.data.files import Files, Paths, cpus, select
from dlseminar.data.imagestats import channel_stats
from dlseminar.data.stream import StreamLoader
from dlseminar.datasets import build_data
from dlseminar.datasets.folder import ReadImage, folder
from dlseminar.errors import ConfigError, DataError
from dlseminar.tasks.detection.data import DetAugment, DetLoader, target

catalog.load_all()
CPU = torch.device("cpu")


def make_folder(root, per_class=9, classes=("ant", "bee", "cow"), seed=0):
    """root/<class>/<i>.png: noisy images of a few sizes, one dominant channel per class."""
    rng = np.random.RandomState(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.randint(0, 255, (10 + i % 3, 12, 3), np.uint8)
            a[..., k] = 220
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


def files_of(root, size=8):
    """(Files of every image under root, the same images decoded in memory, labels)."""
    paths = sorted(root.rglob("*.png"))
    read = ReadImage(3, (size, size))
    X = torch.stack([read(p)[0] for p in paths])
    y = torch.tensor([sorted({p.parent.name for p in paths}).index(p.parent.name) for p in paths])
    return Files(Paths(paths), read, (3, size, size), workers=0), X, y


def batches(loader, epoch=1, start=0):
    loader.set_epoch(epoch, start)
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("pics"))


# --------------------------------------------------------------------------- the batches

@pytest.mark.parametrize("world, rank, start", [(1, 0, 0), (1, 0, 2), (2, 1, 0), (3, 2, 1)])
def test_streamed_batches_are_the_in_memory_batches(pics, world, rank, start):
    files, X, y = files_of(pics)
    stats = channel_stats(X, 255.0)
    for batch_size in (4, 5):  # 27 samples: 5 leaves a last batch of 2, folded for 3 processes
        aug = Augment(["hflip", "crop"], (8, 8), False, seed=3)
        mem = TensorLoader(X, y, batch_size, shuffle=True, seed=3, transform=BatchNorm(stats, CPU), augment=aug)
        st = StreamLoader(files, y, batch_size, True, 3, CPU, BatchNorm(stats, CPU), aug)
        if world > 1:
            mem.shard(rank, world)
            st.shard(rank, world)
        assert len(st) == len(mem)
        for epoch in (1, 2):
            a, b = batches(mem, epoch, start), batches(st, epoch, start)
            assert len(a) == len(b) == len(mem) - start
            for (xa, ya), (xb, yb) in zip(a, b):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_worker_processes_give_the_same_batches_and_leave_the_global_rng_alone(pics):
    files, X, y = files_of(pics)
    files.workers = 2
    aug = Augment(["hflip", "vflip", "crop"], (8, 8), False, seed=1)
    mem = TensorLoader(X, y, 4, shuffle=True, seed=1, augment=aug)
    st = StreamLoader(files, y, 4, True, 1, CPU, None, aug)
    assert st.workers == min(2, cpus())
    for epoch in (1, 2, 3):  # the persistent workers serve every epoch
        rng = torch.get_rng_state()
        b = batches(st, epoch)
        assert torch.equal(rng, torch.get_rng_state())  # dropout's draws do not depend on the loader
        a = batches(mem, epoch)
        assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b)) and len(a) == len(b)
    st.close()


def test_a_resumed_epoch_reads_only_the_batches_after_its_checkpoint(pics):
    files, X, y = files_of(pics)
    seen = []

    def counting(path):
        seen.append(path)
        return ReadImage(3, (8, 8))(path)

    files.read = counting
    st = StreamLoader(files, y, 4, True, 0, CPU)
    got = batches(st, epoch=2, start=5)
    assert len(got) == len(st) - 5 == 2 and len(seen) == sum(len(b[1]) for b in got) == 27 - 20
    assert len(batches(st, epoch=3)) == len(st)  # set_epoch without a start: the whole epoch again


def test_detection_lists_stream_like_the_det_loader(pics):
    files, X, _ = files_of(pics)
    targets = [target([[1, 1, 5, 6]] if i % 2 else [], [1] if i % 2 else []) for i in range(len(X))]
    stats = channel_stats(X, 255.0)
    aug = DetAugment(["hflip", "crop"], seed=2)
    mem = DetLoader(X, targets, 4, True, 2, CPU, BatchNorm(stats, CPU), aug)
    st = StreamLoader(files, targets, 4, True, 2, CPU, BatchNorm(stats, CPU), aug, lists=True)
    mem.set_epoch(1)
    st.set_epoch(1)
    for (xa, ta), (xb, tb) in zip(mem, st, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))
        assert all(torch.equal(p["boxes"], q["boxes"]) and torch.equal(p["labels"], q["labels"]) for p, q in zip(ta, tb))


def test_pinned_memory_and_non_blocking_copies_only_on_cuda(pics):
    files, _, y = files_of(pics)
    assert StreamLoader(files, y, 4, True, 0, CPU)._loader().pin_memory is False
    assert StreamLoader(files, y, 4, True, 0, torch.device("cuda"))._loader().pin_memory is True
    files.workers = 64
    assert StreamLoader(files, y, 4, True, 0, CPU).workers == cpus()  # never more workers than CPUs


# --------------------------------------------------------------------------- Files

def test_files_read_like_a_stack_of_decoded_images(pics):
    files, X, _ = files_of(pics)
    assert len(files) == 27 and files.shape == (27, 3, 8, 8)
    assert torch.equal(files[4], X[4]) and torch.equal(files[2:7], X[2:7])
    assert torch.equal(torch.cat(list(files.split(10))), X)
    part = select(files, [5, 0, 26])
    assert isinstance(part, Files) and torch.equal(part[0:3], X[[5, 0, 26]])


def test_paths_keep_any_file_name(tmp_path):
    names = [tmp_path / "çà va" / "ünï.png", tmp_path / "a b" / "日本.jpg", tmp_path / "x.png"]
    p = Paths([(n, n.with_suffix(".mask.png")) for n in names])
    assert len(p) == 3 and p[1] == (names[1], names[1].with_suffix(".mask.png"))
    assert p.take([2, 0])[1][0] == names[0]


def test_statistics_of_streamed_files_equal_the_in_memory_ones_exactly(pics):
    mem = build_data(config.resolve(sets=["data.name=folder", f"data.path={pics}", "data.image_size=8",
                                          "data.in_memory=true"]))
    st = build_data(config.resolve(sets=["data.name=folder", f"data.path={pics}", "data.image_size=8",
                                         "data.in_memory=false", "data.num_workers=0"]))
    assert isinstance(st.splits["train"][0], Files) and isinstance(mem.splits["train"][0], torch.Tensor)
    assert st.info == mem.info
    for k in ("mean", "std", "scale"):
        assert torch.equal(st.stats[k], mem.stats[k]), k
    for s in ("train", "val", "test"):
        assert torch.equal(st.splits[s][1], mem.splits[s][1]) and torch.equal(st.splits[s][0][0:99], mem.splits[s][0])
    # the exact integer sums agree with a float64 computation of the same statistics
    X = mem.splits["train"][0].double() / 255
    assert torch.allclose(mem.stats["mean"].flatten(), X.mean((0, 2, 3)), atol=1e-12)


# --------------------------------------------------------------------------- the choice

@pytest.mark.parametrize("free, streamed, said", [
    (10_000, True, "more than 50% of the 10.0 KB of free RAM: streamed from the files, decoded per batch by "
                   + ("2 worker processes" if cpus() > 1 else "1 worker process")),
    (10_000_000_000, False, "within 50% of the 10.0 GB of free RAM: decoded into memory"),
    (None, False, None),  # the free RAM cannot be read: in memory, as before
])
def test_auto_decides_by_the_estimate_and_says_so(pics, monkeypatch, capsys, free, streamed, said):
    monkeypatch.setattr(memory, "ram_available", lambda: free)
    img = folder(path=str(pics), image_size=8)
    assert isinstance(img.X, Files) == streamed
    err = capsys.readouterr().err
    if said is None:
        assert "data.in_memory" not in err
    else:
        assert f"note: folder: 27 images at 3x8x8 take about 10.4 KB decoded, {said} (data.in_memory: auto)" in err


def test_true_keeps_the_refusal_and_false_streams_without_asking(pics, monkeypatch, capsys):
    monkeypatch.setattr(memory, "ram_available", lambda: 10_000)
    with pytest.raises(ConfigError, match="decoding 27 images at 3x8x8 needs about 10.4 KB in RAM; 10.0 KB are free"):
        folder(path=str(pics), image_size=8, in_memory="true")
    assert isinstance(folder(path=str(pics), image_size=8, in_memory="false").X, Files)
    assert "data.in_memory" not in capsys.readouterr().err


def test_seg_folder_auto_estimate_reads_only_headers(tmp_path, monkeypatch, capsys):
    from dlseminar.datasets.seg_folder import seg_folder

    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for i in range(6):
        Image.new("RGB", (20, 10), (i, 0, 0)).save(tmp_path / "images" / f"{i}.png")
        Image.new("L", (20, 10), i % 2).save(tmp_path / "masks" / f"{i}.png")
    monkeypatch.setattr(memory, "ram_available", lambda: 1000)
    seg = seg_folder(root=str(tmp_path))
    assert isinstance(seg.X, Files) and seg.X.shape == (6, 3, 10, 20) and seg.masks.shape == (6, 10, 20)
    # 1,200 pixels: decoded pairs (4 bytes a pixel), then twice (stack, split copies) uint8 images and int64 masks (11)
    assert "seg_folder: 6 image/mask pairs take about 31.2 KB decoded" in capsys.readouterr().err
    x, m = seg.X.row(3)
    assert m.dtype == torch.int64 and m.unique().tolist() == [1] and x[0].unique().tolist() == [3]


# --------------------------------------------------------------------------- files that break while streaming

def test_a_file_unreadable_while_streaming_is_one_error_or_skipped(tmp_path, capsys):
    root = make_folder(tmp_path / "pics", per_class=4)
    files, X, y = files_of(root)
    broken = files.paths[5][0]
    broken.write_bytes(b"not a png any more")
    with pytest.raises(DataError) as e:
        batches(StreamLoader(files, y, 4, False, 0, CPU))
    msg = str(e.value)
    assert str(broken) in msg and "could be read when the run started" in msg and "data.skip_bad" in msg
    files.skip_bad = True
    got = batches(StreamLoader(files, y, 4, False, 0, CPU))
    assert [len(b[1]) for b in got] == [4, 3, 4]  # the broken sample left out of its batch
    assert torch.equal(got[1][1], y[[4, 6, 7]])
    err = capsys.readouterr().err
    assert err.count(str(broken)) == 1 and "became unreadable while streaming" in err
    for i in (4, 6, 7):
        files.paths[i][0].write_bytes(b"")
    with pytest.raises(DataError, match="every image of a batch became unreadable"):
        batches(StreamLoader(files, y, 4, False, 0, CPU))


def test_yaml_booleans_are_the_words_of_in_memory(tmp_path):
    """`in_memory: true` in a recipe file (YAML reads it as a boolean) means the choice 'true'; other text keys
    still refuse a YAML boolean."""
    f = tmp_path / "r.yaml"
    f.write_text("data:\n  name: folder\n  in_memory: false\n")
    assert config.resolve(str(f), [])["data.in_memory"] == "false"
    f.write_text("data:\n  name: folder\n  in_memory: true\n")
    assert config.resolve(str(f), [])["data.in_memory"] == "true"
    f.write_text("data:\n  name: yes\n")
    with pytest.raises(ConfigError, match="quote it"):
        config.resolve(str(f), [])
