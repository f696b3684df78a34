"""U-Net (Ronneberger et al. 2015), written out by hand: it is what the segmentation lesson teaches.

Encoder: per level i < depth a double conv (3x3 conv -> [BatchNorm] -> ReLU, twice) of width
base_width * 2**i, then a 2x2 max pool. Bottleneck: a double conv of width base_width * 2**depth
(with Dropout2d when model.dropout > 0). Decoder: per level, upsample to the level's width,
concatenate the encoder's feature map (the skip connection), double conv. A 1x1 conv gives one
score per class and pixel: (B, num_outputs, H, W).

Upsampling (model.upsample):
  transpose  learned 2x2 transposed convolution, stride 2
  bilinear   bilinear x2 then a 3x3 conv
  unpool     a 1x1 conv to the level's width, then MaxUnpool2d with the indices of the encoder's
             MaxPool2d at that level: each value goes back where its maximum came from (zeros elsewhere)

Any H, W: the input is zero-padded (bottom/right) to a multiple of 2**depth and the scores are
cropped back, so the output always has the input's height and width (labels are never resized).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .layers import init_weights
from .pretrained import image_shape

UPSAMPLE = ("transpose", "bilinear", "unpool")


class DoubleConv(nn.Sequential):
    """(3x3 conv -> [BatchNorm] -> ReLU) x 2; the spatial size is kept (padding 1)."""

    def __init__(self, c_in: int, c_out: int, batch_norm: bool, dropout: float = 0.0):
        layers: list[nn.Module] = []
        for a, b in ((c_in, c_out), (c_out, c_out)):
            layers.append(nn.Conv2d(a, b, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class Up(nn.Module):
    """x (B, 2w, h, w_) -> upsample to (B, w, 2h, 2w_) -> cat skip (B, w, ...) -> double conv -> (B, w, 2h, 2w_)."""

    def __init__(self, c_in: int, width: int, mode: str, batch_norm: bool):
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(c_in, width, 2, stride=2)
        elif mode == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(c_in, width, 3, padding=1))
        else:  # unpool: channels must match the pooled map whose indices we reuse
            self.reduce = nn.Conv2d(c_in, width, 1)
            self.up = nn.MaxUnpool2d(2)
        self.conv = DoubleConv(2 * width, width, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if self.mode == "unpool":
            x = self.up(self.reduce(x), indices, output_size=skip.shape[-2:])
        else:
            x = self.up(x)
        return self.conv(torch.cat([skip, x], 1))  # (B, 2 * width, H, W)


class UNet(nn.Module):
    def __init__(self, in_channels: int, num_outputs: int, depth: int, base_width: int, upsample: str,
                 batch_norm: bool, dropout: float):
        super().__init__()
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(c, w, batch_norm))
            c = w
        # return_indices: the unpool decoder puts each value back where its maximum came from
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.bottleneck = DoubleConv(c, widths[-1], batch_norm, dropout)
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i], upsample, batch_norm) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))  # (B, C, H', W'), H' and W' multiples of 2**depth
        skips, indices = [], []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x, ix = self.pool(x)
            indices.append(ix)
        x = self.bottleneck(x)
        for up, skip, ix in zip(self.up, reversed(skips), reversed(indices)):
            x = up(x, skip, ix)
        return self.head(x)[..., :h, :w]  # (B, num_outputs, H, W): the padding is cropped away


@MODELS.register("unet", dense=True)
def unet(in_shape, num_outputs, output_kind, depth=4, base_width=16, upsample="transpose", batch_norm=False,
         dropout=0.0, init="default"):
    """U-Net: encoder-decoder with skip connections; one score per class and pixel (segmentation)."""
    c, _, _ = image_shape(in_shape, "unet")
    if upsample not in UPSAMPLE:
        raise ConfigError(f"model.upsample {upsample!r} is not one of {', '.join(UPSAMPLE)}")
    if depth < 1:
        raise ConfigError(f"model.depth must be >= 1 (got {depth})")
    model = UNet(c, num_outputs, depth, base_width, upsample, batch_norm, dropout)
    init_weights(model, init)
    return model
