"""Light dense decoder over a backbone's feature pyramid (FPN top-down path, U-Net style fusion).

The RCKD pretraining head (predicting the teacher's per-pixel response) and the segmentation
fine-tuning head. Each level is projected to ``width`` channels by a 1x1 conv; from the coarsest
level down, the running map is upsampled x2 (bilinear), added to the next lateral and fused by a
3x3 conv + BN + ReLU. The finest fused map (stride 4 for most backbones) is upsampled once more to
half its stride, refined by a depthwise-separable 3x3 conv, projected to ``out_channels`` and
resized bilinearly to the requested full resolution. Keeping the full-resolution stage a plain
resize keeps the decoder's cost small next to the backbone's.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DenseDecoder"]


def _conv_bn_relu(cin: int, cout: int, k: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DenseDecoder(nn.Module):
    """Pyramid -> full-resolution logits ``(B, out_channels, H, W)``.

    Args:
        channels: channels of each pyramid level, finest first.
        strides: stride of each level, finest first (consecutive levels differ by 2x).
        out_channels: number of output maps (logits).
        width: working channel width.
    """

    def __init__(self, channels: Sequence[int], strides: Sequence[int], out_channels: int,
                 width: int = 64) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"channels {tuple(channels)} and strides {tuple(strides)} must pair up")
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"strides must double level to level, got {tuple(strides)}")
        self.channels = tuple(int(c) for c in channels)
        self.strides = tuple(int(s) for s in strides)
        self.out_channels = int(out_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.channels)
        self.fuse = nn.ModuleList(_conv_bn_relu(width, width) for _ in self.channels[:-1])
        self.refine = nn.Sequential(_conv_bn_relu(width, width, groups=width),
                                    _conv_bn_relu(width, width, k=1))
        self.head = nn.Conv2d(width, self.out_channels, 1)

    def forward(self, pyramid: Sequence[torch.Tensor],
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """Decode ``pyramid`` (finest first) to logits at ``size`` (default: input resolution)."""
        if len(pyramid) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} pyramid levels, got {len(pyramid)}")
        if size is None:
            h, w = pyramid[0].shape[-2:]
            size = (h * self.strides[0], w * self.strides[0])
        x = self.lateral[-1](pyramid[-1])
        for i in range(len(pyramid) - 2, -1, -1):
            lat = self.lateral[i](pyramid[i])
            x = F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse[i](x + lat)
        if self.strides[0] > 1:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.head(self.refine(x))
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
