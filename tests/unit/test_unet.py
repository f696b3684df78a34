"""Unit tests for the U-Net (dlseminar/models/unet.py): every upsampling mode at odd and even sizes,
pad-and-crop to the input's size, and max-unpooling that really reuses the encoder's pool indices."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dlseminar import config
from dlseminar.errors import ConfigError
from dlseminar.models import build_model
from dlseminar.models.summary import layer_table

MODES = ["transpose", "bilinear", "unpool"]


def unet(in_shape, num_outputs=4, **keys):
    sets = ["model.name=unet"] + [f"model.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in keys.items()]
    return build_model(config.resolve(sets=sets), in_shape, num_outputs, "scores")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_shape, depth", [((1, 37, 45), 3), ((3, 64, 64), 4), ((3, 5, 7), 2)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_forward_backward_keeps_the_input_size(mode, in_shape, depth, batch_norm):
    torch.manual_seed(0)
    m = unet(in_shape, upsample=mode, depth=depth, base_width=4, batch_norm=batch_norm, dropout=0.2)
    x = torch.randn(2, *in_shape)
    out = m(x)
    assert out.shape == (2, 4, *in_shape[1:])
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)  # every layer, the deepest included, takes part
    m.eval()
    with torch.no_grad():
        assert m(x[:1]).shape == (1, 4, *in_shape[1:])


def test_widths_follow_depth_and_base_width():
    m = unet((3, 32, 32), depth=3, base_width=8)
    convs = [l for l in m.down.modules() if isinstance(l, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32]
    assert m.bottleneck[0].out_channels == 64 and m.head.out_channels == 4
    assert isinstance(m.up[0].up, nn.ConvTranspose2d)


def test_odd_input_is_zero_padded_bottom_right_and_cropped_back():
    torch.manual_seed(0)
    m = unet((1, 37, 45), depth=3, base_width=4).eval()
    x = torch.randn(2, 1, 37, 45)
    with torch.no_grad():
        padded = m(torch.nn.functional.pad(x, (0, 3, 0, 3)))  # 40 x 48: multiples of 2**3
        assert padded.shape[-2:] == (40, 48)
        assert torch.allclose(m(x), padded[..., :37, :45], atol=1e-6)


def test_unpool_puts_values_back_at_the_pool_indices():
    torch.manual_seed(0)
    m = unet((2, 16, 20), upsample="unpool", depth=2, base_width=4).eval()
    pooled, unpooled, reduced = [], [], []
    m.pool.register_forward_hook(lambda mod, inp, out: pooled.append((inp[0], out[1])))
    for up in m.up:
        up.up.register_forward_hook(lambda mod, inp, out: unpooled.append(out))
        up.reduce.register_forward_hook(lambda mod, inp, out: reduced.append(out))
    with torch.no_grad():
        m(torch.randn(3, 2, 16, 20))
    assert len(pooled) == 2 and len(unpooled) == 2
    for (before, ix), out, small in zip(reversed(pooled), unpooled, reduced):
        assert out.shape == before.shape  # back to the size before that pool
        flat = out.flatten(2)
        # every value sits exactly where the encoder's maximum came from ...
        assert torch.equal(flat.gather(2, ix.flatten(2)), small.flatten(2))
        # ... and every other position is zero
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(2, ix.flatten(2), True)
        assert (flat[~mask] == 0).all()
        assert mask.sum(2).eq(ix[0, 0].numel()).all()


def test_unpool_output_depends_on_the_indices():
    torch.manual_seed(0)
    m = unet((1, 8, 8), upsample="unpool", depth=1, base_width=2).eval()
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        a = m(x)
        m.pool.register_forward_hook(lambda mod, inp, out: (out[0], torch.zeros_like(out[1])))  # all to pixel 0
        b = m(x)
    assert not torch.allclose(a, b)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="upsample"):
        config.resolve(sets=["model.upsample=nearest"])
    with pytest.raises(ConfigError, match="depth"):
        config.resolve(sets=["model.depth=0"])
    with pytest.raises(ConfigError, match="image inputs"):
        unet((5,))


def test_layer_table_ends_at_the_input_size():
    rows = layer_table(unet((3, 37, 45), depth=2, base_width=4), (3, 37, 45))
    assert rows[-1][1] == "Conv2d" and rows[-1][2] == (4, 40, 48)  # the head, before the crop
    assert any(r[1] == "MaxPool2d" for r in rows)
