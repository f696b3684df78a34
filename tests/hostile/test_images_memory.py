"""Hostile images and bounded memory.

Images: decompression bombs (a PNG header declaring 50000x50000 pixels, a real 1-bit bomb,
one in the range where Pillow only warns), truncated PNG and JPEG, a zero-byte file, text named
.png, a BMP header declaring 60000x60000; and files that must simply read: 16-bit PNG, palette PNG
with transparency, CMYK JPEG, animated GIF, EXIF-rotated JPEG, corrupt EXIF, float TIFF, LA and
1-bit PNG, a PNG declaring 9000x9000 with one row of data. Each through `--data folder`,
`--data seg_folder` (as an image and, for some, as a mask) and `dlsem predict`: one `error:` line
naming the file, or a clean run, and never a raw Pillow warning (recorded in process; on stderr
with -W default in a subprocess).

Memory: a generated dataset, a model's weights, one full-batch step and a folder's decoded images
that cannot fit are refused (exit 2, the estimate in the line) before anything is allocated; a
300-class CSV trains and plots with a bounded peak memory.
"""
from __future__ import annotations

import io
import json
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _harness import hostile

# --------------------------------------------------------------------------- hostile files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(w: int, h: int, depth: int, body: bytes) -> bytes:
    head = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def png_declaring(path: Path, w: int, h: int) -> None:
    """A grayscale PNG whose header says w x h but which holds one row: a few bytes, a huge declared size."""
    path.write_bytes(_png(w, h, 8, zlib.compress(b"\x00" + bytes(w))))


def png_bomb(path: Path, side: int) -> None:
    """A complete 1-bit PNG of side x side zeros: a few KB that decode to side**2 pixels."""
    comp = zlib.compressobj(9)
    row = b"\x00" + bytes((side + 7) // 8)
    path.write_bytes(_png(side, side, 1, b"".join(comp.compress(row) for _ in range(side)) + comp.flush()))


def _noise(seed=0):
    return Image.fromarray(np.random.RandomState(seed).randint(0, 255, (48, 48, 3), np.uint8))


def _cut(im: Image.Image, fmt: str) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt)
    return b.getvalue()[: len(b.getvalue()) // 2]


def _halves(w=24, h=16) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = 255  # left half white
    return Image.fromarray(a)


def _exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    _halves().save(path, "JPEG", exif=exif, quality=95)


def _anim(path: Path) -> None:
    frames = [Image.new("P", (24, 16), i) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _palette_alpha(path: Path) -> None:
    im = Image.new("P", (24, 16), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.save(path, transparency=0)


MAKERS = {  # kind -> (suffix, writer)
    "bomb_declared": (".png", lambda p: png_declaring(p, 50000, 50000)),
    "bomb_warn_range": (".png", lambda p: png_bomb(p, 10000)),  # 100 Mpx: Pillow would only warn, then decode
    "bomb_real": (".png", lambda p: png_bomb(p, 14000)),
    "bmp_declared": (".bmp", lambda p: p.write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack(
        "<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 0, 0, 0, 0))),
    "truncated_png": (".png", lambda p: p.write_bytes(_cut(_noise(), "PNG"))),
    "truncated_jpeg": (".jpg", lambda p: p.write_bytes(_cut(_noise(), "JPEG"))),
    "zero_bytes": (".png", lambda p: p.write_bytes(b"")),
    "text_as_png": (".png", lambda p: p.write_text("this is not an image\n")),
    # files that read
    "png16": (".png", lambda p: Image.fromarray(np.full((16, 24), 30000, np.uint16)).save(p)),
    "palette_alpha": (".png", _palette_alpha),
    "cmyk_jpeg": (".jpg", lambda p: Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(p, "JPEG")),
    "animated_gif": (".gif", _anim),
    "exif_rotated": (".jpg", _exif_rotated),
    "corrupt_exif": (".jpg", lambda p: _halves().save(p, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05junk")),
    "float_tiff": (".tif", lambda p: Image.fromarray(np.full((16, 24), 0.5, np.float32)).save(p)),
    "la_png": (".png", lambda p: Image.new("LA", (24, 16), (100, 128)).save(p)),
    "one_bit_png": (".png", lambda p: Image.new("1", (24, 16), 1).save(p)),
    "declares_more_than_it_holds": (".png", lambda p: png_declaring(p, 9000, 9000)),
}

BAD = {  # kind -> words the one error line holds (besides the file's name)
    "bomb_declared": ("declares 2,500,000,000 pixels", "decompression bomb"),
    "bomb_warn_range": ("declares 100,000,000 pixels", "decompression bomb"),
    "bomb_real": ("declares 196,000,000 pixels", "decompression bomb"),
    "bmp_declared": ("declares 3,600,000,000 pixels", "decompression bomb"),
    "truncated_png": ("cannot read", "truncated"),
    "truncated_jpeg": ("cannot read", "truncated"),
    "zero_bytes": ("empty (0 bytes)",),
    "text_as_png": ("cannot read", "cannot identify image file"),
}
GOOD = ["png16", "palette_alpha", "cmyk_jpeg", "animated_gif", "exif_rotated", "corrupt_exif", "float_tiff",
        "la_png", "one_bit_png", "declares_more_than_it_holds"]


def make(kind: str, folder: Path, stem: str) -> Path:
    suffix, write = MAKERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{suffix}"
    write(path)
    return path


def pillow_warnings(record) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in record
            if "PIL" in str(w.filename) or "DecompressionBomb" in w.category.__name__]


def quiet(dlsem, root, *args, **kw):
    """hostile(), recording every warning: none may come from Pillow."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        r = hostile(dlsem, root, *args, **kw)
    assert not pillow_warnings(record), pillow_warnings(record)
    return r


# --------------------------------------------------------------------------- the three reading paths


def folder_tree(root: Path, kind: str | None) -> Path | None:
    """root/pics/{cat,dog}/ with four small PNGs each, and the hostile file in cat/."""
    for k, cls in enumerate(("cat", "dog")):
        (root / "pics" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.new("RGB", (12, 10), (60 + 120 * k, 90, 30 * i)).save(root / "pics" / cls / f"{i}.png")
    return make(kind, root / "pics" / "cat", f"z_{kind}") if kind else None


FOLDER = ("train", "--data", "folder", "--set", "data.path=pics", "--set", "data.image_size=8", "--model", "mlp",
          "--epochs", "1", "--out", "run")


def seg_tree(root: Path, kind: str | None, as_mask: bool = False) -> Path | None:
    """root/seg/images/im<i>.png (24 wide, 16 high) and masks/im<i>.png (L, classes 0 and 1); im0's image
    (or its mask) replaced by the hostile file. An upright-rotated image gets its mask as displayed."""
    rng = np.random.RandomState(0)
    for d in ("images", "masks"):
        (root / "seg" / d).mkdir(parents=True, exist_ok=True)
    for i in range(6):
        Image.fromarray(rng.randint(0, 255, (16, 24, 3), np.uint8)).save(root / "seg" / "images" / f"im{i}.png")
        m = np.zeros((16, 24), np.uint8)
        m[4:12, 6 + i: 14 + i] = 1
        Image.fromarray(m, "L").save(root / "seg" / "masks" / f"im{i}.png")
    if kind is None:
        return None
    if as_mask:
        return make(kind, root / "seg" / "masks", "im0")
    (root / "seg" / "images" / "im0.png").unlink()
    if kind == "exif_rotated":  # labelled as every viewer shows it: 16 wide, 24 high
        Image.fromarray(np.zeros((24, 16), np.uint8), "L").save(root / "seg" / "masks" / "im0.png")
    return make(kind, root / "seg" / "images", "im0")


SEG = ("train", "--set", "data.name=seg_folder", "--set", "data.root=seg", "--set", "data.image_size=16",
       "--set", "model.name=unet", "--set", "model.depth=2", "--set", "model.base_width=4", "--epochs", "1",
       "--out", "run")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A tiny image classifier (shapes, 3x16x16, one epoch), trained once for the module's predict cases."""
    from dlseminar import run
    from dlseminar.config import resolve

    out = tmp_path_factory.mktemp("clf") / "run"
    run.train(resolve(None, ["data.name=shapes", "data.n_samples=40", "data.image_size=16", "model.name=cnn",
                             "train.epochs=1", "logging.plots=false", f"out={out}"], {}))
    return out / "best.pt"


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("path", ["folder", "seg_folder", "predict"])
def test_bad_image_is_one_line_naming_the_file(dlsem, tmp_path, classifier, kind, path):
    if path == "folder":
        f, args = folder_tree(tmp_path, kind), FOLDER
    elif path == "seg_folder":
        f, args = seg_tree(tmp_path, kind), SEG
    else:
        f, args = make(kind, tmp_path, kind), ("predict", str(classifier), f"{kind}{MAKERS[kind][0]}", "--json")
    quiet(dlsem, tmp_path, *args, words=(f.name, *BAD[kind]))
    assert not (tmp_path / "run").exists()  # refused before a run directory exists


@pytest.mark.parametrize("kind", ["bomb_declared", "zero_bytes", "text_as_png"])
def test_bad_mask_is_one_line_naming_the_file(dlsem, tmp_path, kind):
    f = seg_tree(tmp_path, kind, as_mask=True)
    quiet(dlsem, tmp_path, *SEG, words=(f.name, "mask", *BAD[kind]))


@pytest.mark.parametrize("kind", GOOD)
def test_odd_but_valid_image_trains_from_a_folder(dlsem, tmp_path, kind):
    folder_tree(tmp_path, kind)
    quiet(dlsem, tmp_path, *FOLDER, rc=0)
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.parametrize("kind", GOOD)
def test_odd_but_valid_image_is_predicted(dlsem, tmp_path, classifier, kind):
    f = make(kind, tmp_path, kind)
    r = quiet(dlsem, tmp_path, "predict", str(classifier), f.name, "--json", rc=0)
    res = json.loads(r.out)
    assert len(res) == 1 and res[0]["image"] == f.name and abs(sum(t["prob"] for t in res[0]["top"]) - 1) < 1e-4


@pytest.mark.parametrize("kind", ["png16", "cmyk_jpeg", "palette_alpha", "animated_gif", "exif_rotated"])
def test_odd_but_valid_image_trains_in_seg_folder(dlsem, tmp_path, kind):
    seg_tree(tmp_path, kind)
    quiet(dlsem, tmp_path, *SEG, rc=0)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["task"] == "segmentation" and summary["epochs_run"] == 1 and summary["test"], summary


@pytest.mark.parametrize("kind,expect", [
    ("png16", lambda x: x.shape == (3, 16, 24) and x.unique().tolist() == [117]),  # 30000/65535: the 16-bit range
    ("palette_alpha", lambda x: x.unique().tolist() == [255]),  # transparent index on white
    ("cmyk_jpeg", lambda x: x[:, 8, 12].tolist() == [255, 0, 0] or x[0].float().mean() > 240 > 15 > x[1].float().mean()),
    ("animated_gif", lambda x: x.unique().tolist() == [0]),  # the first frame
    ("exif_rotated", lambda x: x.shape == (3, 24, 16) and x[:, :10].float().mean() > 230 > 25 > x[:, 14:].float().mean()),
    ("float_tiff", lambda x: x.unique().tolist() == [128]),
    ("la_png", lambda x: x.unique().tolist() == [177]),  # 100 at alpha 128 over white
    ("declares_more_than_it_holds", lambda x: x.shape == (3, 9000, 9000)),  # Pillow fills the missing rows
])
def test_odd_images_decode_to_what_a_viewer_shows(tmp_path, kind, expect):
    from dlseminar.datasets.imageio import load_image

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        x = load_image(make(kind, tmp_path, kind), 3, None)
    assert expect(x), (kind, x.shape, x.float().mean())
    assert not pillow_warnings(record)


@pytest.mark.parametrize("kind", ["bomb_warn_range", "corrupt_exif"])
def test_no_pillow_warning_on_stderr_in_a_real_process(dlsem, tmp_path, classifier, kind):
    """-W default shows every warning once: Pillow's decompression-bomb and EXIF warnings must not be among them."""
    f = make(kind, tmp_path, kind)
    r = hostile(dlsem, tmp_path, "predict", str(classifier), f.name, "--json", rc=2 if kind in BAD else 0,
                words=(f.name, *BAD.get(kind, ())), real=True, env={"PYTHONWARNINGS": "default"})
    assert "Warning" not in r.err, r.err  # DecompressionBombWarning, UserWarning: Corrupt EXIF data


# --------------------------------------------------------------------------- memory refusals


@pytest.fixture
def little_ram(monkeypatch):
    """The free RAM read as 60 MB (whatever the machine has)."""
    from dlseminar import memory

    monkeypatch.setattr(memory, "ram_available", lambda: 60_000_000)


@pytest.mark.parametrize("args,words", [
    (("--data", "shapes", "--set", "data.n_samples=1000000000"),
     ("dataset 'shapes' with 1,000,000,000 samples", "needs at least", "in ram", "data.n_samples")),
    (("--data", "shapes", "--set", "data.image_size=100000"),
     ("500 samples of 100000x100000 pixels", "needs at least", "data.image_size")),
    (("--data", "moons", "--set", "data.n_samples=10000000000"), ("dataset 'moons'", "needs at least", "data.n_samples")),
    (("--data", "shapes_seg", "--set", "data.n_samples=100000000", "--model", "unet"),
     ("dataset 'shapes_seg'", "needs at least")),
    (("--data", "moons", "--set", "model.hidden=[300000,300000]"),
     ("model mlp has 90,001,", "parameters", "weights alone need about 360.0 gb", "use a smaller model")),
])
def test_what_cannot_fit_is_refused_before_it_is_made(dlsem, tmp_path, args, words):
    quiet(dlsem, tmp_path, "train", *args, "--epochs", "1", "--out", "run", words=words)
    assert not (tmp_path / "run").exists()


def test_full_batch_step_that_cannot_fit(dlsem, tmp_path, little_ram):
    quiet(dlsem, tmp_path, "train", "--data", "shapes", "--model", "vgg11", "--batch-size", "full", "--set",
          "data.n_samples=100", "--set", "data.image_size=64", "--epochs", "1", "--out", "run",
          words=("one training step of vgg11 with batch_size full (60 samples of 3x64x64) needs about",
                 "in ram (activations", "60 mb are free", "use a smaller train.batch_size"))
    assert not (tmp_path / "run").exists()


def test_folder_too_big_to_decode(dlsem, tmp_path, little_ram):
    folder_tree(tmp_path, None)
    quiet(dlsem, tmp_path, *[a if a != "data.image_size=8" else "data.image_size=2000" for a in FOLDER],
          "--set", "data.in_memory=true",
          words=("decoding 8 images at 3x2000x2000 needs about 0.2 gb in ram", "60 mb are free", "data.image_size",
                 "data.in_memory: false"))


def test_folder_too_big_for_ram_is_streamed_by_default(tmp_path, little_ram, capsys):
    """data.in_memory auto: the set that in_memory true refuses is streamed from its files instead, said in a note."""
    from dlseminar.data.files import Files
    from dlseminar.datasets.folder import folder

    folder_tree(tmp_path, None)
    img = folder(path=str(tmp_path / "pics"), image_size=2000)
    assert isinstance(img.X, Files) and img.X.shape == (8, 3, 2000, 2000)
    assert ("note: folder: 8 images at 3x2000x2000 take about 0.2 GB decoded, more than 50% of the 60 MB of free "
            "RAM: streamed from the files") in capsys.readouterr().err


def test_eval_with_a_dataset_that_cannot_fit(dlsem, tmp_path, classifier):
    quiet(dlsem, tmp_path, "eval", str(classifier), "--set", "data.n_samples=1000000000",
          words=("dataset 'shapes' with 1,000,000,000 samples of 16x16 pixels", "needs at least"))


def _peak(args: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """(exit code, stderr, peak resident MB, seconds) of `dlsem *args` in a fresh process."""
    probe = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
             "p = subprocess.run([sys.executable, '-m', 'dlseminar', *sys.argv[1:]], capture_output=True, text=True); "
             "print(json.dumps([p.returncode, p.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
             "time.perf_counter() - t]))")
    import subprocess

    p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    return tuple(json.loads(p.stdout))


def test_refusal_allocates_nothing_in_a_real_process(tmp_path):
    rc, err, peak_mb, _ = _peak(["train", "--data", "shapes", "--set", "data.n_samples=1000000000", "--out", "run"],
                                tmp_path)
    assert rc == 2 and err.startswith("error: dataset 'shapes' with 1,000,000,000 samples needs at least 7.7 TB"), err
    assert peak_mb < 1500  # the interpreter and its imports; not a byte of the 7.7 TB


# --------------------------------------------------------------------------- many classes


def many_class_csv(path: Path, k: int, per_class: int = 20, features: int = 20) -> None:
    rng = np.random.RandomState(0)
    y = np.arange(k * per_class) % k
    X = rng.normal(0, 1, (k, features))[y] + rng.normal(0, 0.5, (len(y), features))
    lines = [",".join([*(f"f{i}" for i in range(features)), "target"])]
    lines += [",".join([*(f"{v:.3f}" for v in row), str(t)]) for row, t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")


def test_300_classes_train_plot_and_report(dlsem, tmp_path):
    many_class_csv(tmp_path / "c300.csv", 300)
    quiet(dlsem, tmp_path, "train", "--data", "csv", "--set", "data.path=c300.csv", "--set", "task=classification",
          "--epochs", "2", "--out", "run", rc=0)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert len(s["test_details"]["rows"]) == 300 and "plots/confusion_matrix.png" in s["plots"]
    with Image.open(tmp_path / "run" / "plots" / "confusion_matrix.png") as im:
        assert im.size == (1500, 720)  # two fixed panels, not a 150-inch figure
    quiet(dlsem, tmp_path, "report", "run", rc=0)
    assert (tmp_path / "run" / "report.html").stat().st_size < 2_000_000
    e = quiet(dlsem, tmp_path, "eval", "run/best.pt", rc=0)
    assert "true \\ predicted" not in e.out and len(e.out.splitlines()) > 300  # per-class table; no 300-wide matrix


def test_300_classes_peak_memory_in_a_real_process(tmp_path):
    many_class_csv(tmp_path / "c300.csv", 300)
    rc, err, peak_mb, seconds = _peak(["train", "--data", "csv", "--set", "data.path=c300.csv", "--set",
                                       "task=classification", "--epochs", "2", "--out", "run"], tmp_path)
    assert rc == 0, err
    assert peak_mb < 2000, peak_mb  # 7.9 GB with a figure of 0.5 inch per class
