"""Hostile checkpoints: every kind of file that is not a whole dlseminar checkpoint, given to every command
that reads one (`eval`, `predict`, `train --resume`), and checkpoints that do not fit the model or the data.

Each case must end in one `error:` line that says what the file is or what differs, in a beginner's words
(a text file, a PNG image, truncated, code objects refused, layer 'x' is 5x2 in the checkpoint but 128x2 in
the model, 4 features vs 2 features), under 300 characters, with no input file changed and no code run.

Two tiny runs are trained once per module (a 2-epoch xor MLP, a 1-epoch 16x16 shapes CNN); each case builds
its bad file from them inside its own folder.
"""
from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _harness import error_lines, hostile, tiny_run
from PIL import Image

MAX_CHARS = 300  # one line a beginner reads, not a paragraph


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """{'xor': run dir, 'img': run dir}: trained once, copied or read by every case."""
    d = tmp_path_factory.mktemp("ckpt-src")
    return {"xor": tiny_run(d / "xor", "xor"), "img": tiny_run(d / "img", "img")}


def _ckpt(src) -> dict:
    return torch.load(src["xor"] / "last.pt", map_location="cpu", weights_only=True)


def _save(obj, path: Path, **kw) -> None:
    torch.save(obj, path, **kw)


class Evil:
    """Unpickling it would create a file named PWNED next to the checkpoint."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class Shell(Evil):
    """Unpickling it would run a shell command (torch blocks the module: another wording of the refusal)."""

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.path}'",))


def _torchscript(p: Path, src) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated: it is still what people have lying around
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(p))


def _legacy_cut(p: Path, src) -> None:
    b = io.BytesIO()
    torch.save(_ckpt(src), b, _use_new_zipfile_serialization=False)
    p.write_bytes(b.getvalue()[: len(b.getvalue()) * 6 // 10])


def _zip(p: Path, names) -> None:
    with zipfile.ZipFile(p, "w") as z:
        for n in names:
            z.writestr(n, "x")


def _without(key):
    def make(p: Path, src):
        d = _ckpt(src)
        del d[key]
        _save(d, p)
    return make


def _with(**changes):
    def make(p: Path, src):
        _save({**_ckpt(src), **changes}, p)
    return make


SAFETENSORS_HEAD = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
# (id, how to make bad.pt from the trained runs, words the error line must hold)
KINDS = [
    ("truncated-zip", lambda p, s: p.write_bytes((s["xor"] / "last.pt").read_bytes()[:30_000]),
     ["truncated or corrupt", "not a complete PyTorch file"]),
    ("truncated-legacy", _legacy_cut, ["truncated or corrupt"]),
    ("text", lambda p, s: p.write_text("epochs: 3\nlr: 0.1\n"), ["is a text file, not a checkpoint", "epochs: 3"]),
    ("git-lfs-pointer", lambda p, s: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n"),
     ["git lfs pointer", "git lfs pull"]),
    ("python-pickle-with-code", lambda p, s: p.write_bytes(pickle.dumps({"model": Evil(p.parent / "PWNED")})),
     ["is a python pickle", "never loads pickles"]),
    ("torch-file-with-code", lambda p, s: _save({**_ckpt(s), "x": Evil(p.parent / "PWNED")}, p),
     ["holds code objects", "refuses to load", "only plain tensors and numbers"]),
    ("torch-file-calls-os-system", lambda p, s: _save({**_ckpt(s), "x": Shell(p.parent / "PWNED")}, p),
     ["holds code objects", "posix.system"]),
    ("whole-model-pickled", lambda p, s: _save(torch.nn.Linear(2, 2), p),
     ["holds code objects", "torch.nn.modules.linear.Linear"]),
    ("numpy-inside", _with(x=np.float64(1.5)), ["holds code objects", "numpy"]),
    ("torchscript", _torchscript, ["TorchScript model", "not a dlseminar checkpoint"]),
    ("onnx", lambda p, s: p.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.1" + bytes(40)), ["is an ONNX model"]),
    ("safetensors", lambda p, s: p.write_bytes(struct.pack("<Q", len(SAFETENSORS_HEAD)) + SAFETENSORS_HEAD + bytes(8)),
     ["is a safetensors file", "weights only"]),
    ("png-image", lambda p, s: Image.new("RGB", (4, 4)).save(p, format="PNG"), ["is a PNG image, not a checkpoint"]),
    ("hdf5-keras", lambda p, s: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200)), ["HDF5 file", "Keras"]),
    ("random-bytes", lambda p, s: p.write_bytes(np.random.default_rng(0).bytes(4096)),
     ["is not a PyTorch file", "no known format"]),
    ("zip-archive", lambda p, s: _zip(p, ["notes/a.txt"]), ["is a zip archive, not a PyTorch checkpoint"]),
    ("npz", lambda p, s: _zip(p, ["a.npy", "b.npy"]), ["NumPy .npz archive"]),
    ("empty", lambda p, s: p.write_bytes(b""), ["is empty (0 bytes)"]),
    ("bare-state-dict", lambda p, s: _save(_ckpt(s)["model"], p), ["holds bare model weights", "state_dict"]),
    ("a-list", lambda p, s: _save([1, 2, 3], p), ["holds a list, not a dlseminar checkpoint"]),
    ("foreign-dict", lambda p, s: _save({"epoch": 3, "net": {"w": torch.zeros(2)}}, p),
     ["not a dlseminar checkpoint", "holds no 'format_version'", "its keys: epoch, net"]),
    ("newer-format", _with(format_version=99), ["newer dlseminar", "format 99", "upgrade"]),
    ("no-data-info", _without("data_info"), ["holds no 'data_info'", "not written by dlsem train"]),
    ("no-data-stats", _without("data_stats"), ["holds no 'data_stats'"]),
    ("last-without-rng", _without("rng"), ["holds no 'rng'"]),
    ("damaged-in-shape", _with(data_info={"name": "xor", "kind": "classification", "in_shape": [-2]}),
     ["damaged 'data_info'", "input shape [-2]"]),
    ("model-not-tensors", _with(model={"1.weight": [1, 2]}), ["damaged 'model'"]),
    ("config-not-mapping", _with(config="lr: 0.1"), ["damaged 'config'"]),
]
COMMANDS = {"eval": ("eval", "bad.pt"), "predict": ("predict", "bad.pt", "img.png"),
            "resume": ("train", "--resume", "bad.pt")}
MATRIX = [pytest.param(make, cmd, words, id=f"{kind}-{cmd}") for kind, make, words in KINDS for cmd in COMMANDS]


def _check(r, words=()):
    line = error_lines(r.err)[0]
    assert len(line) < MAX_CHARS, line
    assert "\n" not in line and "weights_only" not in line and "miniz" not in line, line  # none of torch's paragraph
    return line


@pytest.mark.parametrize("make,cmd,words", MATRIX)
def test_bad_checkpoint_file(dlsem, tmp_path, src, make, cmd, words):
    make(tmp_path / "bad.pt", src)
    Image.new("RGB", (16, 16)).save(tmp_path / "img.png")
    r = hostile(dlsem, tmp_path, *COMMANDS[cmd], words=["'bad.pt'", *words])
    _check(r)
    assert not (tmp_path / "PWNED").exists()  # a checkpoint never runs code


def test_the_payloads_are_real(tmp_path, src):
    """The code cases above would have run code had the file been unpickled plainly."""
    p = tmp_path / "bad.pt"
    KINDS[4][1](p, src)
    pickle.loads(p.read_bytes())["model"].close()
    assert (tmp_path / "PWNED").exists()


def _copy(src, name, dest: Path) -> Path:
    shutil.copytree(src[name], dest / "run")
    return dest / "run"


def _edit(path: Path, change) -> None:
    """Rewrite a checkpoint with `change(d)` applied: what a hand-edited or foreign file looks like."""
    d = torch.load(path, map_location="cpu", weights_only=True)
    change(d)
    torch.save(d, path)


def _shrink_layer(d):
    d["model"]["1.weight"] = torch.zeros(5, 2)


def _rename_layer(d):
    first = next(iter(d["model"]))
    d["model"]["hidden.weight"] = d["model"].pop(first)


# (id, run, file edit or None, command after the run dir, words)
MISFITS = [
    ("hidden-changed-by-set", "xor", None, ("eval", "run/best.pt", "--set", "model.hidden=[16]"),
     ["the weights in 'run/best.pt' do not fit model 'mlp'", "layer '1.weight' is 128x2 in the checkpoint but 16x2 "
      "in the model", "(and 2 more layers differ)", "model.hidden differs from the checkpoint's config"]),
    ("widths-changed-by-set-predict", "img", None, ("predict", "run/best.pt", "img.png", "--set", "model.widths=[4,8]"),
     ["do not fit model 'cnn'", "in the checkpoint but", "model.widths differs"]),
    ("edited-layer-shape", "xor", ("best.pt", _shrink_layer), ("eval", "run/best.pt"),
     ["layer '1.weight' is 5x2 in the checkpoint but 128x2 in the model"]),
    ("edited-layer-name", "xor", ("best.pt", _rename_layer), ("eval", "run/best.pt"),
     ["missing from the checkpoint: 1.weight", "not in the model: hidden.weight"]),
    ("edited-layer-shape-resume", "xor", ("last.pt", _shrink_layer), ("train", "--resume", "run/last.pt"),
     ["layer '1.weight' is 5x2 in the checkpoint but 128x2 in the model"]),
    ("edited-layer-name-predict", "img", ("best.pt", _rename_layer), ("predict", "run/best.pt", "img.png"),
     ["missing from the checkpoint: 0.weight", "not in the model: hidden.weight"]),
    ("loss-changed-outputs", "xor", None, ("eval", "run/best.pt", "--set", "loss.name=bce"),
     ["the model in 'run/best.pt' has 2 outputs but dataset 'xor' (classification) needs 1", "loss.name differs"]),
    ("best-to-resume", "xor", None, ("train", "--resume", "run/best.pt"), ["holds weights only", "last.pt"]),
    ("run-dir-as-checkpoint", "xor", None, ("eval", "run"), ["is a directory", "did you mean best.pt or last.pt"]),
    ("missing", "xor", None, ("eval", "run/nope.pt"), ["checkpoint 'run/nope.pt' not found"]),
    # data of another shape: both shapes named, in features, images and classes
    ("features-and-classes", "xor", None, ("eval", "run/best.pt", "--data", "iris"),
     ["dataset 'iris' has inputs of 4 features and 3 classes (setosa, versicolor, virginica) but the checkpoint was "
      "trained on 2 features and 2 classes (xor)"]),
    ("many-classes", "xor", None, ("eval", "run/best.pt", "--data", "digits"),
     ["dataset 'digits' has inputs of 64 features and 10 classes (0, 1, 2, ...) but the checkpoint was trained on "
      "2 features and 2 classes (xor)"]),
    ("same-classes-other-features", "xor", None, ("eval", "run/best.pt", "--data", "breast_cancer"),
     ["dataset 'breast_cancer' has inputs of 30 features but the checkpoint was trained on 2 features (xor)"]),
    ("images-for-a-table-model", "xor", None, ("eval", "run/best.pt", "--data", "shapes", "--set", "data.image_size=8"),
     ["dataset 'shapes' has inputs of 3x8x8 images", "but the checkpoint was trained on 2 features"]),
    ("table-for-an-image-model", "img", None, ("eval", "run/best.pt", "--data", "digits"),
     ["dataset 'digits' has inputs of 64 features", "but the checkpoint was trained on 3x16x16 images", "(shapes)"]),
    ("image-size", "img", None, ("eval", "run/best.pt", "--set", "data.image_size=8"),
     ["dataset 'shapes' has inputs of 3x8x8 images but the checkpoint was trained on 3x16x16 images (shapes)"]),
    ("channels", "img", None, ("eval", "run/best.pt", "--data", "digits_images"),
     ["dataset 'digits_images' has inputs of 1x16x16 images and 10 classes", "trained on 3x16x16 images"]),
    ("classes", "img", None, ("eval", "run/best.pt", "--set", "data.num_classes=3"),
     ["dataset 'shapes' has 3 classes (circle, square, triangle) but the checkpoint was trained on 4 classes"]),
    ("task-kind", "xor", None, ("eval", "run/best.pt", "--data", "plane"),
     ["dataset 'plane' is for regression but the checkpoint was trained for classification (xor)"]),
]


@pytest.mark.parametrize("name,edit,args,words", [pytest.param(*m[1:], id=m[0]) for m in MISFITS])
def test_checkpoint_that_does_not_fit(dlsem, tmp_path, src, name, edit, args, words):
    run = _copy(src, name, tmp_path)
    if edit:
        _edit(run / edit[0], edit[1])
    Image.new("RGB", (16, 16)).save(tmp_path / "img.png")
    _check(hostile(dlsem, tmp_path, *args, words=words))


def test_the_runs_themselves_evaluate_and_predict(dlsem, tmp_path, src):
    """The control: the untouched checkpoints work with each command the cases above break."""
    run = _copy(src, "img", tmp_path)
    Image.new("RGB", (16, 16)).save(tmp_path / "img.png")
    assert dlsem("eval", "run/best.pt", "--json").rc == 0
    r = dlsem("predict", "run/best.pt", "img.png", "--json")
    assert r.rc == 0 and json.loads(r.out)[0]["image"] == "img.png", r
    xor = _copy(src, "xor", tmp_path / "x")
    assert dlsem("eval", xor / "best.pt", "--data", "xor").rc == 0
    assert run.is_dir()
