"""Random geometric augmentation of training batches, the same draw for an image and its mask.

`data.augment` lists the operations, applied in this order to every training sample:
  hflip   mirror left-right with probability 1/2
  vflip   mirror top-bottom with probability 1/2
  crop    a random crop of 50-100 % of the area (aspect 3/4-4/3), resized back to the input size

torchvision.transforms.v2 does the work: wrapping the mask as a tv_tensors.Mask makes it follow
the image's geometry with nearest-neighbour resampling (a class index is never interpolated).
Validation and test batches are never augmented.

Every batch draws from its own seed (run seed, epoch, batch index) instead of the global RNG,
so a run resumed mid-epoch sees the same augmented batches as an uninterrupted one.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..seeding import mix_seed

OPS = ("hflip", "vflip", "crop")


def check(names: list[str], data) -> None:
    """data.augment names known operations, and the data declares how augmentation moves its labels."""
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ConfigError(f"data.augment: unknown operation {unknown[0]!r}; choose from {', '.join(OPS)}")
    if names and data.augment_labels is None:
        what = "this dataset is a table" if len(data.info.in_shape) == 1 else f"not for {data.info.kind} data"
        raise ConfigError(f"data.augment applies to image datasets only ({what})")


class Augment:
    """(x uint8 (B, C, H, W), y) -> augmented (x, y); y is moved with x when it is a (B, H, W) mask."""

    def __init__(self, names: list[str], size: tuple[int, int], with_mask: bool, seed: int):
        from torchvision.transforms import v2

        ops = []
        if "hflip" in names:
            ops.append(v2.RandomHorizontalFlip())
        if "vflip" in names:
            ops.append(v2.RandomVerticalFlip())
        if "crop" in names:
            ops.append(v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True))
        self.tf = v2.Compose(ops)
        self.with_mask, self.seed = with_mask, seed

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: int, batch: int):
        from torchvision import tv_tensors

        xs, ys = [], []
        with torch.random.fork_rng(devices=[]):  # v2 draws from the global CPU RNG: fork it, seed it per batch
            torch.manual_seed(mix_seed(self.seed, epoch, batch))
            for i in range(len(x)):
                if self.with_mask:
                    a, m = self.tf(tv_tensors.Image(x[i]), tv_tensors.Mask(y[i]))
                    ys.append(m.as_subclass(torch.Tensor))
                else:
                    a = self.tf(tv_tensors.Image(x[i]))
                xs.append(a.as_subclass(torch.Tensor))
        return torch.stack(xs), (torch.stack(ys) if self.with_mask else y)
