"""Fine-tuning (finetune.py): model.init_from, model.freeze, train.unfreeze_at, optim.backbone_lr_mult.

The shown case: a cnn (with batch norm) trained on 8-class shapes, fine-tuned on a 4-class shapes set
(another seed) with a frozen backbone: every frozen tensor, batch-norm buffers included, is
bit-identical afterwards and only the head changed."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dlseminar import finetune
from dlseminar.assemble import build
from dlseminar.catalog import load_all
from dlseminar.config import resolve
from dlseminar.engine.optim import LRSchedule, build_optimizer
from dlseminar.errors import ConfigError
from dlseminar.models import build_model
from dlseminar.registry import OPTIMIZERS
from dlseminar.run import train

SHAPES = ["model.name=cnn", "model.batch_norm=true", "data.name=shapes", "data.image_size=16", "data.n_samples=96",
          "train.batch_size=16", "logging.plots=false", "checkpoint.min_interval_s=0", "checkpoint.max_overhead=0"]
HEAD = ("9.weight", "9.bias")  # cnn with batch norm: conv, bn, relu, pool, conv, bn, relu, pool, flatten, linear


def _rows(d: Path):
    import csv

    with open(d / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """best.pt of a cnn trained on 8-class shapes."""
    out = tmp_path_factory.mktemp("src") / "run"
    run_dir, _ = train(resolve(sets=SHAPES + ["data.num_classes=8", "train.epochs=2", f"out={out}"]))
    return run_dir / "best.pt"


def _ft(src, out, *sets):
    """The fine-tuning config: 4-class shapes from another seed, starting from `src`, backbone frozen."""
    return resolve(sets=SHAPES + ["data.num_classes=4", "seed=1", f"model.init_from={src}", "model.freeze=backbone",
                                  f"out={out}", *sets])


def test_frozen_backbone_is_bit_identical_and_only_the_head_changes(source, tmp_path, capsys):
    cfg = _ft(source, tmp_path / "ft", "train.epochs=2")
    built = {k: v.clone() for k, v in build(cfg).model.state_dict().items()}  # the run's starting weights
    err = capsys.readouterr().err
    assert (f"note: model.init_from {source} (cnn on shapes): 4 of 5 layers loaded (0, 1, 4, ...); 1 new, left as "
            f"built (9: (4, 256) here, (8, 256) in the checkpoint)") in err, err
    run_dir, summary = train(cfg)
    src, final = _weights(source), _weights(run_dir / "last.pt")
    backbone = [k for k in final if k not in HEAD]
    assert any("running_mean" in k for k in backbone) and any("num_batches_tracked" in k for k in backbone)
    for k in backbone:  # parameters and batch-norm buffers: never moved
        assert torch.equal(final[k], src[k]) and torch.equal(built[k], src[k]), k
    for k in HEAD:  # a new 4-class head, trained
        assert final[k].shape[0] == 4 and not torch.equal(final[k], built[k]), k
    assert summary.epochs_run == 2 and "test/acc" in summary.test


def test_unfreeze_at_trains_everything_from_that_epoch_and_resume_across_it_is_exact(source, tmp_path):
    src = tmp_path / "source.pt"
    shutil.copy(source, src)
    full_dir, full = train(_ft(src, tmp_path / "full", "train.epochs=3", "train.unfreeze_at=2"))
    part_dir, _ = train(_ft(src, tmp_path / "part", "train.epochs=1", "train.unfreeze_at=2"))
    after_one = _weights(part_dir / "last.pt")
    assert all(torch.equal(after_one[k], v) for k, v in _weights(src).items() if k not in HEAD)  # epoch 1: frozen
    src.unlink()  # a resume takes its weights from last.pt: model.init_from is not read again
    _, resumed = train(None, resume=str(part_dir / "last.pt"), sets=["train.epochs=3"])
    final = _weights(part_dir / "last.pt")
    assert not torch.equal(final["0.weight"], after_one["0.weight"])  # epochs 2-3: the backbone trains
    assert not torch.equal(final["1.running_mean"], after_one["1.running_mean"])  # and its batch norm is in train mode
    assert _rows(part_dir) == _rows(full_dir) and resumed.test == full.test
    assert all(torch.equal(final[k], v) for k, v in _weights(full_dir / "last.pt").items())

    from dlseminar.inference import evaluate

    metrics, _, _ = evaluate(str(part_dir / "best.pt"), "test", [], {})  # eval does not read model.init_from either
    assert metrics["test/acc"] == pytest.approx(full.test["test/acc"])


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_skips_frozen_parameters_until_unfrozen(name):
    """Frozen parameters get no gradient, and every optimizer (weight decay and momentum included) leaves a
    parameter without one alone: the optimizer is built once over all of them and unfreezing is the flag only."""
    cfg = resolve(sets=[f"optim.name={name}", "optim.weight_decay=0.1", "optim.lr=0.05", "model.name=cnn",
                        "model.batch_norm=true", "model.freeze=1", "train.unfreeze_at=3"])
    torch.manual_seed(0)
    model = build_model(cfg, (3, 8, 8), 4, "scores")
    opt = build_optimizer(cfg, model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))

    def steps(epoch, n=3):
        model.train()
        finetune.apply(model, cfg, epoch)
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    steps(epoch=2)
    now = model.state_dict()
    frozen = [k for k in now if k.split(".")[0] in ("0", "1")]  # stage 1: conv 0 and its batch norm 1
    assert len(frozen) == 7 and all(torch.equal(now[k], before[k]) for k in frozen)
    assert not torch.equal(now["4.weight"], before["4.weight"]) and not torch.equal(now["9.weight"], before["9.weight"])
    steps(epoch=3, n=1)
    assert not any(torch.equal(model.state_dict()[k], before[k]) for k in ("0.weight", "1.weight", "1.running_mean"))


# model, input shape, outputs, its head, number of stages, the first stage's modules
ZOO = [
    ("cnn", (3, 16, 16), "scores", ["7"], 2, ["0", "1", "2"]),
    ("lenet5", (1, 28, 28), "scores", ["11"], 4, ["0", "1", "2"]),
    ("mlp", (4,), "scores", ["3"], 1, ["0", "1", "2"]),
    ("perceptron", (4,), "scores", ["linear"], 0, None),
    ("alexnet", (3, 32, 32), "scores", ["classifier"], 5, ["features.0", "features.1", "features.2"]),
    ("vgg11_bn", (3, 32, 32), "scores", ["classifier"], 8, ["features.0", "features.1", "features.2", "features.3"]),
    ("googlenet", (3, 32, 32), "scores", ["aux1", "aux2", "fc"], 12, ["conv1", "maxpool1"]),
    ("resnet18", (3, 32, 32), "scores", ["fc"], 5, ["conv1", "bn1", "relu", "maxpool"]),
    ("unet", (3, 32, 32), "scores", ["head"], 3, ["down", "pool"]),
    ("rcnn_cnn", (3, 64, 64), "detections", ["rpn", "roi_heads"], 2, ["backbone.0", "backbone.1", "backbone.2"]),
]


@pytest.mark.parametrize("name, shape, kind, head, n_stages, first", ZOO, ids=[z[0] for z in ZOO])
def test_head_and_stages_are_read_from_each_zoo_model(name, shape, kind, head, n_stages, first):
    load_all()
    cfg = resolve(sets=[f"model.name={name}", "model.freeze=backbone"])
    model = build_model(cfg, shape, 3, kind)
    stages, heads = finetune.split(model)
    assert [n for n, _ in heads] == head and len(stages) == n_stages
    if first is not None:
        assert [n for n, _ in stages[0]] == first
    head_params = {id(p) for _, m in heads for p in m.parameters()}
    if not stages:
        with pytest.raises(ConfigError, match="no layers before its head"):
            finetune.apply(model, cfg, 1)
        return
    finetune.apply(model, cfg, 1)  # backbone: everything but the head is frozen
    assert all(p.requires_grad == (id(p) in head_params) for p in model.parameters())
    if kind == "scores" and name != "unet":  # the head makes the outputs: as many as the classes
        assert any(getattr(m, "out_features", None) == 3 for _, h in heads for m in h.modules())


def test_backbone_lr_mult_gives_two_groups_and_the_schedule_keeps_their_ratio():
    cfg = resolve(sets=["model.name=cnn", "optim.lr=0.01", "optim.backbone_lr_mult=0.1", "sched.name=cosine",
                        "sched.warmup_epochs=1"])
    model = build_model(cfg, (3, 8, 8), 4, "scores")
    opt = build_optimizer(cfg, model)
    head, backbone = opt.param_groups
    assert [p is q for p, q in zip(head["params"], model[-1].parameters())] == [True, True]
    assert len(backbone["params"]) == 4 and (head["lr"], backbone["lr"]) == (0.01, pytest.approx(0.001))
    sched = LRSchedule(opt, cfg, steps_per_epoch=5, epochs=4)
    for _ in range(12):
        sched.step()
        assert backbone["lr"] == pytest.approx(0.1 * head["lr"], rel=1e-12) and head["lr"] > 0
    assert sched.lr == head["lr"]  # metrics.csv's lr: optim.lr's group
    assert len(build_optimizer(resolve(sets=["model.name=cnn"]), model).param_groups) == 1  # the default: one group
    perceptron = build_model(resolve(sets=["model.name=perceptron"]), (4,), 3, "scores")
    with pytest.raises(ConfigError, match="backbone_lr_mult=0.1: this model has no layers before its head"):
        build_optimizer(cfg, perceptron)


def _one_error_line(r, *words):
    assert r.rc == 2 and "Traceback" not in r.err, r
    lines = [ln for ln in r.err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r
    for w in words:
        assert w in lines[0], (w, lines[0])


BAD = [
    (["model.freeze=top"], "model.freeze must be none, backbone or a number N >= 0 of stages"),
    (["model.freeze=-1"], "model.freeze must be none, backbone or a number"),
    (["model.freeze=backbone", "train.unfreeze_at=-1"], "train.unfreeze_at must be >= 0"),
    (["optim.backbone_lr_mult=0"], "optim.backbone_lr_mult must be > 0"),
    (["model.freeze=3"], "model.freeze=3: this model has 2 stages before its head (7): 0, 3; use a number up to 2"),
    (["train.unfreeze_at=2"], "train.unfreeze_at=2 has nothing to unfreeze: model.freeze is none"),
    (["model.freeze=0", "train.unfreeze_at=2"], "train.unfreeze_at=2 has nothing to unfreeze: model.freeze is 0"),
    (["model.init_from=nope.pt"], "model.init_from: checkpoint"),
    (["model.init_from=nope.pt", "model.pretrained=true"], "model.init_from and model.pretrained both"),
]


@pytest.mark.parametrize("sets, words", BAD, ids=[" ".join(s) for s, _ in BAD])
def test_bad_values_are_one_error_line(dlsem, sets, words):
    args = ["train", "--model", "cnn", "--data", "shapes", "--epochs", "1", "--set", "data.n_samples=40"]
    for s in sets:
        args += ["--set", s]
    _one_error_line(dlsem(*args), words)


def test_a_checkpoint_that_fits_no_layer_is_an_error_not_a_scratch_start(dlsem, source):
    r = dlsem("train", "--model", "mlp", "--data", "shapes", "--set", "data.n_samples=40", "--set",
              f"model.init_from={source}")
    _one_error_line(r, f"model.init_from {source}: none of this model's 2 layers matches the checkpoint's",
                    "(it holds cnn on shapes: 0, 1, 4, ...)")


def test_freeze_refuses_several_processes(monkeypatch):
    cfg = resolve(sets=["model.name=cnn", "model.freeze=backbone"])
    model = build_model(cfg, (3, 8, 8), 4, "scores")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="model.freeze is not supported with several processes"):
        finetune.prepare(model, cfg, fresh=False)


def test_pretrained_weights_get_the_same_note(tmp_path, monkeypatch, capsys):
    """model.pretrained (loaded by the model's builder from the local cache) says what it loaded too."""
    import torchvision

    from dlseminar.models.pretrained import weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    weights_path("resnet18").parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights_path("resnet18"))
    load_all()
    cfg = resolve(sets=["model.name=resnet18", "model.pretrained=true"])
    finetune.prepare(build_model(cfg, (1, 32, 32), 3, "scores"), cfg, fresh=True)  # small stem: a fresh conv1
    assert ("note: model.pretrained: torchvision's resnet18 ImageNet weights: 39 of 41 layers loaded (bn1, "
            "layer1.0.conv1, layer1.0.bn1, ...); 2 new, left as built (conv1: (64, 1, 3, 3) here, (64, 3, 7, 7) in "
            "the checkpoint, fc: (3, 512) here, (1000, 512) in the checkpoint)") in capsys.readouterr().err
    cfg = resolve(sets=["model.name=resnet18", "model.pretrained=true", "model.stem=imagenet"])
    finetune.prepare(build_model(cfg, (1, 64, 64), 3, "scores"), cfg, fresh=True)  # grey: RGB filters averaged in
    assert "40 of 41 layers loaded (conv1, bn1, layer1.0.conv1, ...); 1 new" in capsys.readouterr().err
