"""data.augment: the mask follows the image, is never interpolated, and every batch is reproducible."""
from __future__ import annotations

import pytest
import torch

from dlseminar.config import resolve
from dlseminar.data.augment import Augment, check
from dlseminar.errors import ConfigError


def _scene(b=8, h=24, w=32):
    """Images whose first channel is 60 x the class of the pixel: the mask can be read off the image."""
    g = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 3, (b, h, w), generator=g)
    mask[:, :4, :] = 255  # an ignore band
    x = torch.zeros(b, 3, h, w, dtype=torch.uint8)
    x[:, 0] = (mask.clamp(max=3) * 60).to(torch.uint8)
    x[:, 1] = torch.arange(w).to(torch.uint8)  # a left-to-right ramp shows flips
    return x, mask


def test_flips_move_image_and_mask_together():
    x, m = _scene()
    aug = Augment(["hflip", "vflip"], (24, 32), with_mask=True, seed=1)
    xa, ma = aug(x, m, epoch=1, batch=0)
    assert torch.equal(xa[:, 0], (ma.clamp(max=3) * 60).to(torch.uint8))  # still aligned pixel for pixel
    flipped_lr = (xa[:, 1, 0, 0] == 31)
    assert 0 < int(flipped_lr.sum()) < len(x)  # some samples flipped, some not: a draw per sample
    assert xa.dtype == torch.uint8 and ma.dtype == torch.int64


def test_crop_resamples_masks_with_nearest_neighbour():
    x, m = _scene()
    aug = Augment(["crop"], (24, 32), with_mask=True, seed=3)
    xa, ma = aug(x, m, epoch=2, batch=5)
    assert xa.shape == x.shape and ma.shape == m.shape
    assert set(ma.unique().tolist()) <= {0, 1, 2, 255}  # no value between two classes
    assert not torch.equal(ma, m)


def test_each_batch_has_its_own_seed_and_the_global_rng_is_untouched():
    x, m = _scene()
    aug = Augment(["hflip", "crop"], (24, 32), with_mask=True, seed=7)
    before = torch.get_rng_state()
    a = aug(x, m, epoch=3, batch=2)
    b = aug(x, m, epoch=3, batch=2)
    c = aug(x, m, epoch=3, batch=3)
    assert torch.equal(torch.get_rng_state(), before)  # dropout/shuffle draws are not shifted
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # a resumed run sees the same batch
    assert not torch.equal(a[0], c[0])


def test_classification_labels_pass_through():
    x, _ = _scene()
    y = torch.arange(8)
    xa, ya = Augment(["hflip"], (24, 32), with_mask=False, seed=0)(x, y, 1, 0)
    assert ya is y and xa.shape == x.shape


def test_bad_augment_settings_are_config_errors():
    from dlseminar.data import Data, DataInfo
    from dlseminar.tasks.segmentation.data import SegData

    seg = SegData(DataInfo("s", "segmentation", (3, 8, 8)), {})
    table = Data(DataInfo("t", "classification", (2,)), {})
    with pytest.raises(ConfigError, match="unknown operation 'rotate'"):
        check(["rotate"], seg)
    with pytest.raises(ConfigError, match="image datasets only"):
        check(["hflip"], table)
    check(["hflip", "crop"], seg)  # a mask moves with its image: allowed
    assert resolve(sets=["data.augment=hflip,crop"])["data.augment"] == ["hflip", "crop"]


def test_train_loader_augments_and_eval_loaders_do_not():
    from dlseminar.assemble import build

    cfg = resolve(sets=["data.name=shapes_seg", "data.n_samples=20", "data.image_size=32", "model.name=unet",
                        "model.depth=2", "model.base_width=4", "data.augment=hflip,crop", "train.batch_size=4"])
    setup = build(cfg)
    tr, va = setup.loader("train", train=True), setup.loader("val")
    assert tr.augment is not None and va.augment is None
    tr.set_epoch(1)
    xb, yb = next(iter(tr))
    assert xb.dtype == torch.float32 and yb.shape == xb.shape[:1] + xb.shape[2:]


def test_class_weights_reach_the_pixel_loss_and_their_count_is_checked():
    import torch.nn.functional as F

    from dlseminar.assemble import build

    base = ["data.name=shapes_seg", "data.n_samples=10", "data.image_size=16", "data.num_classes=2",
            "model.name=unet", "model.depth=1", "model.base_width=2"]
    setup = build(resolve(sets=base + ["loss.class_weights=0.2,1,3"]))
    z = torch.randn(2, 3, 16, 16)
    y = torch.randint(0, 3, (2, 16, 16))
    y[0, 0, 0] = 255
    want = F.cross_entropy(z, y, weight=torch.tensor([0.2, 1.0, 3.0]), ignore_index=255)
    assert torch.allclose(setup.task.loss(z, y), want)
    assert not torch.allclose(want, F.cross_entropy(z, y, ignore_index=255))
    with pytest.raises(ConfigError, match="has 2 values but the data has 3 classes"):
        build(resolve(sets=base + ["loss.class_weights=1,2"]))
