"""The learned nuclei teacher: a U-Net-style segmenter on a timm encoder.

Architecture: ``create_backbone(encoder)`` gives a pyramid at strides 4/8/16/32;
:class:`~rckd.models.decoders.DenseDecoder` fuses it top-down into ``width`` feature maps at full
resolution; a shallow full-resolution stem (3x3 conv on the image) is concatenated as the U-Net's
finest skip connection, so boundaries of ~10-pixel nuclei stay sharp; a 3x3 conv and a 1x1 head
give two logits: **nuclei** (foreground) and **boundary** (the inner contour of every nucleus).
Instances come from a marker-controlled watershed on ``prob - boundary``
(:func:`~rckd.models.teachers.postprocess.instances_from_boundary`).

Inputs are float RGB in [0, 1], normalised inside with the encoder's mean/std.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rckd.models.backbones import create_backbone
from rckd.models.decoders import DenseDecoder
from rckd.models.teachers.base import Teacher
from rckd.models.teachers.postprocess import instances_from_boundary

__all__ = ["UNetTeacher", "DEFAULT_POSTPROCESS"]

DEFAULT_POSTPROCESS = {"fg_threshold": 0.5, "marker_threshold": 0.5, "min_marker_um2": 1.0,
                       "min_area_um2": 4.0, "boundary_weight": 1.0}


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class UNetTeacher(Teacher):
    """Encoder pyramid + dense decoder + full-resolution skip -> (nuclei, boundary) logits.

    Args:
        encoder: timm/rckd backbone name (built from scratch; weights come from a checkpoint).
        mpp: microns per pixel the teacher runs at.
        width: decoder width.
        skip: channels of the full-resolution stem.
        encoder_kwargs: passed to ``create_backbone`` (e.g. ``channels``/``stem_width`` for a
            slimmer timm ResNet).
        name: registry name.
        postprocess_params: overrides of :data:`DEFAULT_POSTPROCESS`.
    """

    out_channels = 2
    channel_names = ("nuclei", "boundary")

    def __init__(self, encoder: str = "resnet18", mpp: float = 0.5, width: int = 64, skip: int = 16,
                 encoder_kwargs: dict[str, Any] | None = None, name: str = "unet",
                 postprocess_params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.name = name
        self.mpp = float(mpp)
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in (encoder_kwargs or {}).items()}
        self.arch = {"encoder": encoder, "width": int(width), "skip": int(skip),
                     "encoder_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}}
        self.encoder = create_backbone(encoder, **kwargs)
        self.decoder = DenseDecoder(self.encoder.channels, self.encoder.strides, 2 * skip, width=width)
        self.stem = _conv_bn_relu(3, skip)
        self.fuse = _conv_bn_relu(3 * skip, skip)
        self.head = nn.Conv2d(skip, self.out_channels, 1)
        self.input_divisor = int(self.encoder.input_divisor)
        self.register_buffer("mean", torch.tensor(self.encoder.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.encoder.std).view(1, 3, 1, 1), persistent=False)
        self.postprocess_params = dict(DEFAULT_POSTPROCESS, **(postprocess_params or {}))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 2, H, W)`` of float images in [0, 1] (H, W multiples of input_divisor)."""
        z = (x - self.mean) / self.std
        dense = self.decoder(self.encoder.forward_pyramid(z), size=z.shape[-2:])
        return self.head(self.fuse(torch.cat([dense, self.stem(z)], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`logits`."""
        return self.logits(x)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    def postprocess(self, maps: np.ndarray, mpp: float) -> np.ndarray:
        return instances_from_boundary(maps[0], maps[1], mpp, **self.postprocess_params)

    def describe(self) -> dict:
        return {**super().describe(), "architecture": "unet", **self.arch,
                "mean": list(self.encoder.mean), "std": list(self.encoder.std),
                "channels": list(self.channel_names), "postprocess": self.postprocess_params}
