"""Unit tests for the image-classification model zoo (dlseminar/models/{cnn,alexnet,vgg,googlenet,resnet}.py),
the local-weights helper (pretrained.py) and the layer summary (summary.py)."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from dlseminar import config
from dlseminar.errors import ConfigError
from dlseminar.models import build_model
from dlseminar.models.pretrained import weights_path
from dlseminar.models.summary import count_params, layer_table
from dlseminar.registry import MODELS

IMAGE_MODELS = ["cnn", "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn",
                "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50"]
TINY = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
N_OUT = 3  # not 10 or 1000, so a hard-coded head size would show


def build(name, in_shape, num_outputs=N_OUT, output_kind="scores", **model_keys):
    """Through the real contract: config keys -> build_model -> registered builder."""
    sets = [f"model.name={name}"] + [f"model.{k}={str(v).lower() if isinstance(v, bool) else v}"
                                     for k, v in model_keys.items()]
    return build_model(config.resolve(sets=sets), in_shape, num_outputs, output_kind)


def make(name, in_shape, num_outputs=N_OUT, **kwargs):
    """Call the builder directly (for keyword values the config would not pass as-is)."""
    return MODELS.get(name).fn(in_shape=in_shape, num_outputs=num_outputs, output_kind="scores", **kwargs)


def test_every_image_model_is_registered_with_a_one_line_description():
    for name in IMAGE_MODELS:
        doc = MODELS.get(name).doc
        assert doc and len(doc) <= 120, (name, doc)


# --- forward + backward on tiny inputs -------------------------------------------------------

@pytest.mark.parametrize("in_shape", TINY, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_forward_backward_on_tiny_inputs(name, in_shape):
    torch.manual_seed(0)
    model = build(name, in_shape)
    x = torch.randn(2, *in_shape)
    backward = in_shape != (1, 28, 28)  # 28 px: shapes only, to keep the suite fast
    model.train()
    with torch.set_grad_enabled(backward):
        out = model(x)
    outs = out if name == "googlenet" else (out,)
    if name == "googlenet":  # training with the auxiliary heads: a plain (main, aux1, aux2) tuple
        assert type(out) is tuple and len(out) == 3
    for o in outs:
        assert isinstance(o, torch.Tensor) and o.shape == (2, N_OUT) and torch.isfinite(o).all()
    if backward:
        sum(o.square().mean() for o in outs).backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert any(p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, N_OUT)


def test_values_output_kind_builds_the_same_network():
    model = build("resnet18", (1, 8, 8), num_outputs=1, output_kind="values").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 1)


# --- the lesson's CNN and LeNet-5 -------------------------------------------------------------

def test_cnn_first_layers_have_the_lessons_parameter_counts():
    model = build("cnn", (1, 28, 28), num_outputs=10)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [count_params(c) for c in convs] == [(1 * 3 * 3 + 1) * 8, (8 * 3 * 3 + 1) * 16] == [80, 1168]
    assert count_params(model) == 80 + 1168 + (16 * 7 * 7 + 1) * 10  # 28 -> 14 -> 7 px


def test_cnn_options_reach_the_layers():
    model = build("cnn", (3, 32, 32), widths="[4,8,16]", pool="avg", batch_norm=True, dropout=0.25)
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("Conv2d") == 3 and kinds.count("BatchNorm2d") == 3 and kinds.count("AvgPool2d") == 3
    assert "MaxPool2d" not in kinds and [m.p for m in model if isinstance(m, nn.Dropout)] == [0.25]
    assert model[-1].in_features == 16 * 4 * 4


def test_cnn_skips_the_pool_once_the_map_is_one_pixel():
    model = build("cnn", (1, 8, 8), widths="[2,2,2,2,2]")  # 8 -> 4 -> 2 -> 1 -> 1 -> 1
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 3
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, N_OUT)


@pytest.mark.parametrize("in_shape", [(1, 28, 28), (1, 32, 32)])
def test_lenet5_has_the_classic_61706_parameters(in_shape):
    model = build("lenet5", in_shape, num_outputs=10)
    assert count_params(model) == 61_706
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [120, 84, 10]
    assert model[[i for i, m in enumerate(model) if isinstance(m, nn.Linear)][0]].in_features == 16 * 5 * 5


def test_image_models_reject_non_image_inputs():
    with pytest.raises(ConfigError, match="needs image inputs"):
        build("cnn", (4,))
    with pytest.raises(ConfigError, match="needs image inputs"):
        build("resnet18", (4,))


# --- torchvision architectures at ImageNet size ----------------------------------------------

@pytest.mark.parametrize("name, expected", [("alexnet", 61_100_840), ("vgg16", 138_357_544),
                                            ("resnet18", 11_689_512), ("resnet50", 25_557_032),
                                            ("googlenet", 6_624_904)])
def test_imagenet_stem_matches_torchvision_parameter_counts(name, expected):
    model = build(name, (3, 224, 224), num_outputs=1000)  # stem auto -> imagenet at 224 px
    n = sum(p.numel() for k, p in model.named_parameters() if not k.startswith("aux"))
    assert n == expected
    with torch.device("meta"):  # and the very same tensors as torchvision's network
        extra = {"init_weights": False} if name == "googlenet" else {}
        ref = torchvision.models.get_model(name, weights=None, **extra)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


def test_stem_auto_picks_small_below_128_px_and_imagenet_from_128():
    small, big = build("resnet18", (3, 32, 32)), build("resnet18", (3, 128, 128))
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and isinstance(small.maxpool, nn.Identity)
    assert big.conv1.kernel_size == (7, 7) and big.conv1.stride == (2, 2) and isinstance(big.maxpool, nn.MaxPool2d)
    forced = build("resnet18", (3, 128, 128), stem="small")
    assert forced.conv1.kernel_size == (3, 3)
    g = build("googlenet", (1, 32, 32))
    assert g.conv1.conv.kernel_size == (3, 3) and g.conv1.conv.in_channels == 1
    assert isinstance(g.maxpool1, nn.Identity) and isinstance(g.maxpool2, nn.Identity)


@pytest.mark.parametrize("size, pools", [(8, 3), (28, 4), (32, 5), (64, 5)])
def test_small_vgg_drops_the_early_pools_the_input_cannot_afford(size, pools):
    model = make("vgg11_bn", (1, size, size))
    kinds = [type(m) for m in model.features]
    assert kinds.count(nn.MaxPool2d) == pools and kinds.count(nn.Identity) == 5 - pools
    assert kinds[-1] is nn.MaxPool2d  # the late pools are the ones kept
    assert model.features[0].in_channels == 1 and model.classifier[-1].in_features == 512
    assert count_params(model.classifier) == (512 * 512 + 512) * 2 + 512 * N_OUT + N_OUT
    # Identity in place of a pool keeps torchvision's names, so ImageNet conv weights still line up
    with torch.device("meta"):
        ref = torchvision.models.vgg11_bn(weights=None).state_dict()
    own = make("vgg11_bn", (3, size, size)).state_dict()
    feats = lambda sd: {k: v.shape for k, v in sd.items() if k.startswith("features.")}  # noqa: E731
    assert feats(own) == feats(ref)


@pytest.mark.parametrize("size, pools", [(8, 2), (28, 3), (32, 3)])
def test_small_alexnet(size, pools):
    model = make("alexnet", (3, size, size))
    assert model.features[0].kernel_size == (3, 3) and model.features[0].stride == (1, 1)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == pools
    assert model.classifier[1].in_features == 256 and model.classifier[-1].out_features == N_OUT


@pytest.mark.parametrize("name, in_shape, smallest", [("alexnet", (3, 32, 32), 63), ("vgg16", (1, 28, 28), 32),
                                                      ("googlenet", (3, 8, 8), 15)])
def test_imagenet_stem_on_too_small_input_is_a_config_error(name, in_shape, smallest):
    with pytest.raises(ConfigError, match=f"needs inputs of at least {smallest}x{smallest} px.*stem=small"):
        build(name, in_shape, stem="imagenet")


def test_unknown_stem_is_a_config_error():
    with pytest.raises(ConfigError, match="model.stem"):
        make("resnet18", (3, 32, 32), stem="tiny")


def test_dropout_zero_keeps_torchvisions_default_and_positive_overrides_it():
    ps = lambda m: {x.p for x in m.modules() if isinstance(x, nn.Dropout)}  # noqa: E731
    assert ps(build("vgg11", (3, 32, 32))) == {0.5}
    assert ps(build("vgg11", (3, 32, 32), dropout=0.3)) == {0.3}
    assert ps(build("alexnet", (3, 32, 32))) == {0.5}
    g = build("googlenet", (3, 32, 32), dropout=0.4)
    assert g.dropout.p == 0.4 and g.aux1.dropout.p == 0.7
    assert build("googlenet", (3, 32, 32)).dropout.p == 0.2


def test_googlenet_without_aux_returns_a_tensor_in_training():
    model = build("googlenet", (3, 16, 16), aux=False).train()
    assert model.aux1 is None and not any(k.startswith("aux") for k, _ in model.named_parameters())
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, N_OUT)


# --- pretrained weights from the local cache --------------------------------------------------

@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path (TORCH_HOME), as a user's machine would have."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _place(hub, arch, state):
    path = weights_path(arch)
    assert path.parent == hub
    hub.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_pretrained_absent_is_a_config_error_and_never_downloads(hub, monkeypatch):
    def no_download(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(ConfigError) as e:
        build("resnet18", (3, 32, 32), pretrained=True)
    msg = str(e.value)
    assert "pretrained weights for resnet18 are not in the local cache" in msg
    assert str(hub / "resnet18-f37072fd.pth") in msg and "model.pretrained=false" in msg


def test_pretrained_present_loads_the_cached_weights(hub):
    torch.manual_seed(1)
    saved = torchvision.models.resnet18(weights=None).state_dict()
    _place(hub, "resnet18", saved)
    model = build("resnet18", (3, 224, 224), num_outputs=N_OUT, pretrained=True)
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    assert torch.equal(model.layer3[1].conv2.weight, saved["layer3.1.conv2.weight"])
    assert torch.equal(model.layer1[0].bn1.running_var, saved["layer1.0.bn1.running_var"])
    assert model.fc.weight.shape == (N_OUT, 512)  # a fresh head for our classes
    # 1000 outputs: the ImageNet head is kept too
    assert torch.equal(make("resnet18", (3, 224, 224), 1000, pretrained=True).fc.weight, saved["fc.weight"])
    # grey images: the RGB filters averaged (times 3/C) into one input channel
    grey = make("resnet18", (1, 224, 224), pretrained=True)
    assert torch.allclose(grey.conv1.weight, saved["conv1.weight"].sum(1, keepdim=True))
    # small stem: a fresh 3x3 conv1, everything after it pretrained
    small = make("resnet18", (3, 32, 32), pretrained=True)
    assert small.conv1.weight.shape == (64, 3, 3, 3)
    assert torch.equal(small.layer4[1].conv2.weight, saved["layer4.1.conv2.weight"])


def test_pretrained_googlenet(hub):
    torch.manual_seed(2)
    saved = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).state_dict()
    _place(hub, "googlenet", saved)
    model = make("googlenet", (3, 32, 32), pretrained=True, aux=False)
    assert model.transform_input and model.aux1 is None
    assert torch.equal(model.inception4a.branch2[1].conv.weight, saved["inception4a.branch2.1.conv.weight"])
    assert model.conv1.conv.weight.shape == (64, 3, 3, 3)
    model.train()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, N_OUT)


def test_pretrained_file_for_another_network_is_a_config_error(hub):
    _place(hub, "resnet18", torchvision.models.resnet34(weights=None).state_dict())
    with pytest.raises(ConfigError, match="does not hold torchvision's resnet18 weights"):
        make("resnet18", (3, 32, 32), pretrained=True)
    weights_path("resnet18").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read pretrained weights"):
        make("resnet18", (3, 32, 32), pretrained=True)


# --- summary ----------------------------------------------------------------------------------

def test_layer_table_for_the_cnn():
    model = build("cnn", (1, 8, 8), num_outputs=10)
    rows = layer_table(model, (1, 8, 8))
    assert rows[0] == ("0", "Conv2d", (8, 8, 8), 80)
    assert [r[1] for r in rows] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert rows[3][3] == 1168 and rows[-1][2] == (10,)
    assert sum(r[3] for r in rows) == count_params(model)


def test_layer_table_restores_mode_and_removes_hooks():
    model = build("resnet18", (3, 32, 32)).train()
    rows = layer_table(model, (3, 32, 32))
    assert model.training and not any(m._forward_hooks for m in model.modules())
    assert rows[0] == ("conv1", "Conv2d", (64, 32, 32), 64 * 3 * 3 * 3)
    assert rows[-1] == ("fc", "Linear", (N_OUT,), 512 * N_OUT + N_OUT)
    assert sum(r[3] for r in rows) == count_params(model)  # the shared ReLUs are counted once
    assert count_params(model, trainable_only=True) == count_params(model)
