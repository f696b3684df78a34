"""`dlsem models show`'s table of structure (models/summary.structure): GoogLeNet's auxiliary heads,
ResNet's residual additions, U-Net's skips and max-unpooling, each conv's fully connected equivalent,
and the block diagram of `--plot` (viz/diagram.py)."""
from __future__ import annotations

import pytest
import torch

from dlseminar import config
from dlseminar.errors import ConfigError
from dlseminar.models import build_model
from dlseminar.models.summary import count_params, layer_table, structure
from dlseminar.viz.diagram import boxes, plot


def build(name, in_shape, *sets):
    with torch.device("meta"):  # as `models show` does: shapes only
        return build_model(config.resolve(sets=[f"model.name={name}", *sets]), in_shape, 10, "scores")


def links(rows, kind):
    return [r for r in rows if r.link is not None and r.link[0] == kind]


def test_googlenet_shows_its_two_auxiliary_heads_after_the_blocks_that_feed_them():
    model = build("googlenet", (3, 32, 32))
    rows = structure(model, (3, 32, 32))
    heads = links(rows, "aux")
    assert [(r.layer, r.link[1]) for r in heads] == [("aux1", "inception4a"), ("aux2", "inception4d")]
    assert all("auxiliary head" in r.note and "training only" in r.note for r in heads)
    for head in heads:  # the head's layers follow its branch row, each marked
        i = rows.index(head)
        assert rows[i - 1].block == head.link[1] and rows[i + 1].layer.startswith(head.layer + ".")
    assert {r.note for r in rows if r.aux and r.link is None} == {"auxiliary head 1", "auxiliary head 2"}
    assert heads[0].shape == (10,)  # each head scores the classes
    assert sum(r.params for r in rows) == count_params(model)  # the heads' weights are in the table now
    assert sum(r[3] for r in layer_table(model, (3, 32, 32))) < count_params(model)  # the eval-only table
    assert len(links(rows, "branches")) == 9  # the nine inception modules concatenate their four branches
    assert model.training  # the mode is restored


def test_resnet18_has_eight_residual_additions_three_with_a_projection():
    rows = structure(build("resnet18", (3, 32, 32)), (3, 32, 32))
    adds = links(rows, "residual")
    assert len(adds) == 8 and all(r.kind == "add" and r.params == 0 for r in adds)
    assert [r.layer for r in adds if "projection" in r.note] == ["layer2.0", "layer3.0", "layer4.0"]
    assert sum("identity" in r.note for r in adds) == 5
    assert adds[0].shape == (64, 32, 32) and adds[-1].shape == (512, 4, 4)
    # the addition comes after the block's layers
    assert rows.index(adds[0]) == max(i for i, r in enumerate(rows) if r.block == "layer1.0")


@pytest.mark.parametrize("upsample", ["transpose", "unpool"])
def test_unet_shows_each_skip_concatenation_and_the_unpooling_switches(upsample):
    model = build("unet", (1, 32, 32), f"model.upsample={upsample}")
    rows = structure(model, (1, 32, 32))
    cats = links(rows, "concat")
    assert [(r.layer, r.link[1]) for r in cats] == [("up.0", "down.3"), ("up.1", "down.2"), ("up.2", "down.1"),
                                                   ("up.3", "down.0")]
    assert cats[0].shape == (256, 4, 4)  # 128 upsampled + 128 from the encoder
    i = rows.index(cats[0])  # after the upsampling, before the decoder's convs
    assert rows[i - 1].layer.startswith("up.0.up") and rows[i + 1].layer == "up.0.conv.0"
    unpools = links(rows, "unpool")
    if upsample == "unpool":
        assert [r.link[1] for r in unpools] == ["down.3", "down.2", "down.1", "down.0"]
        assert all(r.kind == "MaxUnpool2d" and "max-unpooling" in r.note and r.call for r in unpools)
        assert sum(r[1] == "MaxUnpool2d" for r in layer_table(model, (1, 32, 32))) == 4  # still layers of the table
    else:
        assert unpools == []


def test_a_convs_fully_connected_equivalent_maps_its_input_size_to_its_output_size():
    rows = structure(build("cnn", (1, 28, 28), "model.widths=[8,16]"), (1, 28, 28))
    convs = [r for r in rows if r.kind == "Conv2d"]
    assert convs[0].params == 80 and convs[0].dense == 784 * 6272 + 6272  # 1x28x28 -> 8x28x28
    assert convs[1].params == 1168 and convs[1].dense == (8 * 14 * 14) * (16 * 14 * 14) + 16 * 14 * 14
    assert all(r.dense is None for r in rows if r.kind != "Conv2d")


def test_the_diagram_has_a_box_per_block_and_draws_every_model(tmp_path):
    rows = structure(build("resnet18", (3, 32, 32)), (3, 32, 32))
    main, aux = boxes(rows)
    assert [b.title for b in main] == ["conv1 .. maxpool", *[f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)],
                                       "avgpool", "fc"]
    assert aux == {}
    g_main, g_aux = boxes(structure(build("googlenet", (3, 32, 32)), (3, 32, 32)))
    assert {k: [b.title for b in v] for k, v in g_aux.items()} == {"inception4a": ["aux1"], "inception4d": ["aux2"]}
    cnn_main, _ = boxes(structure(build("cnn", (3, 32, 32), "model.widths=[8,16]"), (3, 32, 32)))
    assert [b.title for b in cnn_main] == ["0 .. 2", "3 .. 5", "6 .. 7"]  # conv-ReLU-pool stages, then the head
    for name, sets in (("resnet18", ()), ("googlenet", ()), ("unet", ("model.upsample=unpool",))):
        path = plot(tmp_path / f"{name}.png", structure(build(name, (3, 32, 32), *sets), (3, 32, 32)), name)
        assert path.stat().st_size > 10_000


def test_the_plot_file_is_refused_in_one_line_before_drawing(tmp_path):
    rows = structure(build("cnn", (1, 8, 8)), (1, 8, 8))
    with pytest.raises(ConfigError, match="ending in .png"):
        plot(tmp_path / "net.jpg", rows, "cnn")
    (tmp_path / "net.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already exists"):
        plot(tmp_path / "net.png", rows, "cnn")
    assert (tmp_path / "net.png").read_bytes() == b"x"
    plot(tmp_path / "net.png", rows, "cnn", overwrite=True)
    assert (tmp_path / "net.png").read_bytes()[:4] == b"\x89PNG"
