"""Unit tests for segmentation: the confusion-matrix metrics against scikit-learn (ignore_index
included), the pixel losses (ce with 255 ignored, dice, ce_dice), the task's contract, and the
generated shapes_seg dataset (deterministic by seed, masks that match the drawn shapes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, jaccard_score

from dlseminar import catalog, config
from dlseminar.data import DataInfo
from dlseminar.datasets import build_data
from dlseminar.datasets.segmentation import shapes_seg
from dlseminar.errors import ConfigError
from dlseminar.registry import TASKS
from dlseminar.tasks import build_task
from dlseminar.tasks.segmentation.task import SegMetrics

catalog.load_all()
C = 5


def seg_task(*sets, k=C):
    info = DataInfo(name="t", kind="segmentation", in_shape=(3, 8, 8), num_classes=k,
                    class_names=["background", *[f"c{i}" for i in range(1, k)]])
    return build_task(config.resolve(sets=list(sets)), info)


def random_batches(seed=0, n_batches=3, k=C, ignore_frac=0.1):
    """Scores and masks where predictions agree with the truth more often than chance, plus 255s."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, k, (4, 9, 11), generator=g)
        z = torch.randn(4, k, 9, 11, generator=g) + 2.5 * F.one_hot(y, k).permute(0, 3, 1, 2)
        y[torch.rand(y.shape, generator=g) < ignore_frac] = 255
        out.append((z, y))
    return out


def test_metrics_equal_sklearn_over_the_whole_split_with_ignore():
    m = SegMetrics(C, "cpu")
    batches = random_batches()
    for z, y in batches:
        m.update(z, y, torch.tensor(0.5))
    yt = torch.cat([y.flatten() for _, y in batches]).numpy()
    yp = torch.cat([z.argmax(1).flatten() for z, _ in batches]).numpy()
    keep = yt != 255
    assert (~keep).sum() > 0  # the ignored pixels really were there
    ref_iou = jaccard_score(yt[keep], yp[keep], labels=list(range(C)), average=None)
    got = m.compute()
    assert np.allclose(m.per_class()["iou"].numpy(), ref_iou, atol=1e-6, rtol=0)
    assert abs(got["miou"] - jaccard_score(yt[keep], yp[keep], average="macro")) < 1e-6
    assert abs(got["acc"] - (yt[keep] == yp[keep]).mean()) < 1e-6
    cm = confusion_matrix(yt[keep], yp[keep], labels=list(range(C)))
    assert np.array_equal(m.matrix().numpy(), cm)
    dice = 2 * np.diag(cm) / (cm.sum(0) + cm.sum(1))
    assert abs(got["dice"] - dice.mean()) < 1e-6
    assert got["loss"] == pytest.approx(0.5)
    # counting the 255 pixels as a class would change the figure: the test can tell
    assert abs(jaccard_score(np.where(keep, yt, 0), yp, average="macro") - got["miou"]) > 1e-4


def test_miou_is_not_a_mean_of_per_batch_mious():
    m = SegMetrics(2, "cpu")
    y1, y2 = torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long)
    y2[0, 0, 0] = 0
    z1 = F.one_hot(torch.tensor([[[0, 0], [0, 1]]]), 2).permute(0, 3, 1, 2).float()
    z2 = F.one_hot(torch.ones(1, 2, 2, dtype=torch.long), 2).permute(0, 3, 1, 2).float()
    m.update(z1, y1)
    m.update(z2, y2)
    yt, yp = np.array([0, 0, 0, 0, 0, 1, 1, 1]), np.array([0, 0, 0, 1, 1, 1, 1, 1])
    assert m.compute()["miou"] == pytest.approx(jaccard_score(yt, yp, average="macro"), abs=1e-9)


def test_absent_class_is_left_out_of_the_mean():
    m = SegMetrics(3, "cpu")
    y = torch.tensor([[[0, 1], [1, 0]]])
    m.update(F.one_hot(y, 3).permute(0, 3, 1, 2).float(), y)
    iou = m.per_class()["iou"]
    assert torch.isnan(iou[2]) and m.compute()["miou"] == 1.0


def test_task_contract_and_monitor():
    t = seg_task()
    assert TASKS.get("segmentation").fn is type(t)
    assert (t.monitor, t.mode, t.output_kind, t.loss_name, t.num_outputs) == ("val/miou", "max", "scores", "ce", C)
    assert {"ce", "nll", "dice", "ce_dice"} <= set(t.losses()) and "mse" not in t.losses()
    with pytest.raises(ConfigError, match="does not fit"):
        seg_task("loss.name=mse")
    with pytest.raises(ConfigError, match="does not fit"):
        build_task(config.resolve(sets=["loss.name=dice"]),
                   DataInfo(name="t", kind="classification", in_shape=(2,), num_classes=3, class_names=["a", "b", "c"]))


@pytest.mark.parametrize("loss", ["ce", "nll", "ce_dice"])
def test_pixel_ce_ignores_255(loss):
    (z, y), = random_batches(n_batches=1, ignore_frac=0.3)
    keep = y != 255
    ref = F.cross_entropy(z.permute(0, 2, 3, 1)[keep], y[keep])  # (P, C) against (P,)
    t = seg_task(f"loss.name={loss}")
    got = t.loss(z, y)
    if loss == "ce_dice":
        from dlseminar.engine.losses import soft_dice

        ref = ref + soft_dice(z, y)
    assert torch.allclose(got, ref, atol=1e-6)
    y2 = y.clone()
    y2[~keep] = 0  # the ignored pixels' values must not matter ...
    assert not torch.allclose(t.loss(z, y2), got)  # ... but treating them as a class would


def test_dice_loss_zero_when_perfect_and_ignores_255():
    y = torch.randint(0, 3, (2, 6, 6))
    z = 50 * F.one_hot(y, 3).permute(0, 3, 1, 2).float()
    t = seg_task("loss.name=dice", k=3)
    assert t.loss(z, y) < 1e-3
    y2 = y.clone()
    y2[:, 0] = 255
    z2 = z.clone()
    z2[:, :, 0] = torch.randn(2, 3, 6)  # wrong scores only where the mask says ignore
    assert t.loss(z2, y2) < 1e-3
    assert t.loss(z2, y) > 0.01


def test_dice_gradients_flow():
    z = torch.randn(2, 3, 5, 5, requires_grad=True)
    seg_task("loss.name=ce_dice", k=3).loss(z, torch.randint(0, 3, (2, 5, 5))).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_details_is_the_per_class_iou_table():
    t = seg_task()
    m = t.new_metrics("cpu")
    for z, y in random_batches():
        m.update(z, y, torch.tensor(0.0))
    header, rows = t.details(m)
    assert header == ["class", "pixels", "iou", "dice"]
    assert [r[0] for r in rows] == t.info.class_names
    assert np.allclose([r[2] for r in rows], m.per_class()["iou"].numpy())
    assert sum(r[1] for r in rows) == int(m.matrix().sum())


# --------------------------------------------------------------------------- shapes_seg


def test_shapes_seg_deterministic_by_seed():
    a, b, c = shapes_seg(seed=3, n_samples=12, image_size=32), shapes_seg(seed=3, n_samples=12, image_size=32), \
        shapes_seg(seed=4, n_samples=12, image_size=32)
    assert torch.equal(a.X, b.X) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.X, c.X) and not torch.equal(a.masks, c.masks)


def test_shapes_seg_masks_match_the_classes():
    s = shapes_seg(seed=0, n_samples=30, image_size=40, num_classes=3, noise=0.0)
    assert s.X.shape == (30, 3, 40, 40) and s.X.dtype == torch.uint8
    assert s.masks.shape == (30, 40, 40) and s.masks.dtype == torch.int64
    assert s.class_names == ["background", "circle", "square", "triangle"]
    assert set(s.masks.unique().tolist()) == {0, 1, 2, 3}
    for x, m in zip(s.X, s.masks):
        assert (m > 0).any() and (m == 0).any()  # at least one shape, and background around it
        bg = x[:, m == 0]
        assert (bg == bg[:, :1]).all()  # no noise: the background is one colour ...
        fg = x[:, m > 0]
        assert not (fg == bg[:, :1]).all(0).any()  # ... and no shape pixel has it


def test_shapes_seg_split_and_stats():
    d = build_data(config.resolve(sets=["data.name=shapes_seg", "data.n_samples=20", "data.image_size=24"]))
    assert d.info.kind == "segmentation" and d.info.in_shape == (3, 24, 24) and d.info.num_classes == 5
    assert d.per_batch and d.stats["mean"].shape == (3, 1, 1)
    assert sum(len(X) for X, _ in d.splits.values()) == 20
    Xtr = d.splits["train"][0].double() / 255
    assert torch.allclose(d.stats["mean"].flatten(), Xtr.mean((0, 2, 3)), atol=1e-9)
    with pytest.raises(ConfigError, match="segmentation"):
        build_data(config.resolve(sets=["data.name=shapes_seg", "task=classification"]))
    with pytest.raises(ConfigError, match="num_classes"):
        build_data(config.resolve(sets=["data.name=shapes_seg", "data.num_classes=9"]))
