"""dlsem export: the ONNX file in onnxruntime, the .pt2 file through torch.export.load and the TorchScript
file give what the checkpoint's model gives through the project's predict path (Task.predict on the
data's own normalisation), on a batch of real test inputs given raw, with a dynamic batch; the files
carry their metadata; refusals are one clear error and write nothing."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from dlseminar import export as exporting
from dlseminar.config import resolve
from dlseminar.errors import ConfigError, UserError
from dlseminar.inference import load_for_inference
from dlseminar.run import train

RUNS = {  # tiny, one epoch each: the weights only need to be some trained weights
    "mlp": ["model.name=mlp", "model.hidden=[16]", "data.name=digits"],
    "cnn": ["model.name=cnn", "model.widths=[4,8]", "data.name=digits_images"],
    "unet": ["model.name=unet", "model.depth=2", "model.base_width=4", "model.batch_norm=true",
             "data.name=shapes_seg", "data.n_samples=30", "data.image_size=32"],
    "regression": ["model.name=mlp", "model.hidden=[8]", "data.name=plane", "data.n_samples=100"],
    "detector": ["model.name=fasterrcnn", "model.backbone=cnn", "model.widths=[8,8,8,8]", "data.name=shapes_det",
                 "data.n_samples=20", "data.image_size=64", "data.num_classes=3"],
}
FORMATS = ["onnx", "pt2", "torchscript"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, sets in RUNS.items():
        cfg = resolve(sets=[*sets, "train.epochs=1", "logging.plots=false", "device=cpu", f"out={root / name}"])
        run_dir, _ = train(cfg)
        out[name] = run_dir / "best.pt"
    return out


def real_inputs(ckpt):
    """The test split given raw (pixels 0-255; a table's columns before standardisation), and what the
    project's predict path gives for it: Task.predict on the data's own normalisation."""
    _, setup = load_for_inference(str(ckpt), sets=["device=cpu"])
    X, _ = setup.data.splits["test"]
    transform = setup.data.transform("cpu")
    with torch.inference_mode():
        if transform is not None:  # images stay raw in memory
            return X.float(), setup.task.predict(setup.model, transform(X)), setup
        stats = setup.data.stats  # a table is standardised once, in float64: undone here
        raw = (X.double() * stats["std"].double() + stats["mean"].double()).float()
        return raw, setup.task.predict(setup.model, X), setup


def needs(fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["mlp", "cnn", "unet", "regression"])
def test_exported_file_gives_the_checkpoints_predictions_on_real_inputs(runs, tmp_path, name, fmt):
    needs(fmt)
    target = tmp_path / f"model{exporting.FORMATS[fmt]}"
    result = exporting.export(runs[name], fmt, target)
    assert result["path"] == target and target.stat().st_size == result["bytes"] > 1000
    assert result["max_diff"] <= 1e-4  # the export's own check, on generated inputs
    raw, want, setup = real_inputs(runs[name])
    assert len(raw) >= 5
    run, meta = exporting.load(target)
    for batch in (raw[:1], raw[:5], raw):  # the batch dimension is dynamic
        got = run(batch)
        assert got.shape == want[: len(batch)].shape
        assert (got.double() - want[: len(batch)].double()).abs().max() <= 1e-4
    assert meta["class_names"] == setup.data.info.class_names
    assert meta["input_shape"] == ["batch", *setup.data.info.in_shape]
    assert meta["task"] == setup.data.info.kind and meta["format"] == fmt


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_metadata_and_dynamic_batch_are_in_the_files(runs, tmp_path):
    needs("onnx")
    import onnxruntime

    path = exporting.export(runs["cnn"], "onnx", tmp_path / "cnn.onnx")["path"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape == ["batch", 1, 8, 8] and inp.type == "tensor(float)"
    props = session.get_modelmeta().custom_metadata_map
    assert props["class_names"] == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    assert "raw pixel values 0-255" in props["input"] and props["model"] == "cnn"

    # read with torch's own loaders, as a user without dlseminar would
    ts = exporting.export(runs["mlp"], "torchscript", tmp_path / "mlp.torchscript")["path"]
    extra = {exporting.META_FILE: ""}
    torch.jit.load(str(ts), _extra_files=extra)
    meta = json.loads(extra[exporting.META_FILE])
    assert meta["feature_names"][:2] == ["pixel_0_0", "pixel_0_1"] and meta["input_shape"] == ["batch", 64]
    assert "raw feature columns" in meta["input"]
    pt2 = exporting.export(runs["regression"], "pt2", tmp_path / "reg.pt2")["path"]
    extra = {exporting.META_FILE: ""}
    torch.export.load(str(pt2), extra_files=extra)
    meta = json.loads(extra[exporting.META_FILE])
    assert meta["target_name"] == "y" and meta["output"].startswith("predictions in the data's units")


@pytest.mark.filterwarnings("ignore:RCNN always returns")
def test_detector_exports_to_torchscript_and_says_where_torch_cannot(runs, tmp_path):
    _, setup = load_for_inference(str(runs["detector"]), sets=["device=cpu"])
    images, _ = setup.data.splits["test"]  # raw uint8 images, one size here
    X = torch.stack(list(images))
    with torch.inference_mode():
        want = setup.task.predict(setup.model, setup.data.transform("cpu")(X))  # one dict per image
    path = exporting.export(runs["detector"], "torchscript", tmp_path / "det.torchscript")["path"]
    run, meta = exporting.load(path)
    for batch in (1, len(X)):  # any number of images
        got = run(X[:batch].float())
        assert len(got) == batch
        for g, w in zip(got, want):
            for k in ("boxes", "labels", "scores"):
                assert g[k].shape == w[k].shape
                assert torch.allclose(g[k].double(), w[k].double(), rtol=0, atol=1e-4)
    assert sum(len(d["boxes"]) for d in want) > 0  # there were boxes to compare
    assert meta["class_names"] == ["circle", "square", "triangle"]
    for fmt in ("onnx", "pt2"):
        needs(fmt)
        with pytest.raises(ConfigError, match=f"--format {fmt} cannot export the detector 'fasterrcnn'.*"
                                              "use --format torchscript"):
            exporting.export(runs["detector"], fmt, tmp_path / f"det{exporting.FORMATS[fmt]}")
        assert not (tmp_path / f"det{exporting.FORMATS[fmt]}").exists()


def test_onnx_without_the_extra_says_which_to_install(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    with pytest.raises(ConfigError, match=r"--format onnx needs onnxscript .*pip install 'dlseminar\[export\]'"):
        exporting.export(runs["mlp"], "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_refusals_write_nothing_and_the_default_file_is_the_commands_own(runs, tmp_path, monkeypatch):
    ckpt = runs["mlp"]
    with pytest.raises(ConfigError, match=r"--format must be one of onnx, pt2, torchscript \(got 'tflite'\)"):
        exporting.export(ckpt, "tflite")

    mine = tmp_path / "mine.pt2"
    mine.write_text("the user's file")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        exporting.export(ckpt, "pt2", mine)
    assert mine.read_text() == "the user's file"
    exporting.export(ckpt, "pt2", mine, overwrite=True)
    assert exporting.load(mine)[1]["model"] == "mlp"

    before = ckpt.read_bytes()
    for overwrite in (False, True):  # the checkpoint, a run's own file, is never written
        with pytest.raises(ConfigError, match="never"):
            exporting.export(ckpt, "torchscript", ckpt, overwrite=overwrite)
    assert ckpt.read_bytes() == before

    default = ckpt.with_suffix(".torchscript")  # beside the checkpoint, replaced by a rerun
    for _ in range(2):
        assert exporting.export(ckpt, "torchscript")["path"] == default
    assert default.is_file()

    monkeypatch.setattr(exporting, "TOLERANCE", -1.0)  # a file that fails the check is not written
    with pytest.raises(UserError, match="differ from the checkpoint's model.*nothing written"):
        exporting.export(ckpt, "pt2", tmp_path / "checked.pt2")
    assert not (tmp_path / "checked.pt2").exists() and not list(tmp_path.glob(".*checked*"))
