"""The teacher interface: a nuclei segmenter that runs at its own mpp.

A :class:`Teacher` maps RGB images at any resolution to per-pixel maps at the same resolution:

- :meth:`Teacher.response` ``(B, 1, H, W)`` nuclei probability in [0, 1], the RCKD target;
- :meth:`Teacher.maps` all output channels as probabilities (nuclei + boundary for the U-Net);
- :meth:`Teacher.instances` nuclei instance maps (for AJI and PQ).

Images are uint8 or float in [0, 1], ``(B, 3, H, W)``, at ``mpp`` microns per pixel. They are
resampled to the teacher's own ``mpp`` (bilinear with antialiasing), padded to a multiple of
``input_divisor``, run through :meth:`Teacher.forward_maps`, and the maps are cropped and resized
back to ``(H, W)``. Subclasses implement ``forward_maps`` and ``postprocess``.

Test-time augmentation: with ``tta`` set to 2, 4 or 8 the maps are the mean over that many dihedral
views of the input (:func:`dihedral_mean`), each mapped back exactly; 1 (the default) runs the plain
input once.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rckd.data import augment

__all__ = ["Teacher", "to_float", "resample", "dihedral_mean", "MPP_TOLERANCE", "TTA_VIEWS"]

log = logging.getLogger(__name__)

MPP_TOLERANCE = 0.02  # relative mpp difference below which no resampling happens
TTA_VIEWS = (1, 2, 4, 8)  # allowed numbers of test-time dihedral views


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float images ``(B, 3, H, W)`` (or one ``(3, H, W)``) as float32 in [0, 1]."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    return augment.to_float(images)


def resample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)`` to ``size`` with antialiasing when shrinking.

    Antialiased resizing has no bf16/fp16 CPU kernel, so under autocast it runs in fp32 and the
    result is cast back to the input's dtype.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    if shrink and x.dtype in (torch.bfloat16, torch.float16):
        return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False,
                             antialias=True).to(x.dtype)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


# (transpose, quarter turns) of each view; the first 2, 4 and 8 are subgroups of the dihedral group
_VIEWS = ((False, 0), (False, 2), (False, 1), (False, 3), (True, 0), (True, 2), (True, 1), (True, 3))


def dihedral_mean(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: int) -> torch.Tensor:
    """Mean of ``fn`` over ``views`` dihedral transforms of ``x`` (B, C, H, W), each inverted.

    2 views: identity and half turn; 4: the four rotations; 8: rotations with and without a
    transpose. ``fn`` must map an image to maps of the same height and width.
    """
    if views not in TTA_VIEWS:
        raise ValueError(f"test-time views must be one of {TTA_VIEWS}, got {views}")
    total = None
    for transpose, turns in _VIEWS[:views]:
        y = torch.rot90(x.transpose(-1, -2) if transpose else x, turns, (-2, -1))
        out = torch.rot90(fn(y), -turns, (-2, -1))
        out = out.transpose(-1, -2) if transpose else out
        total = out if total is None else total + out
    return total / views


class Teacher(nn.Module):
    """Base class of nuclei teachers (see the module docstring).

    Attributes:
        name: registry name.
        mpp: microns per pixel the teacher runs at.
        out_channels: number of maps :meth:`forward_maps` returns (channel 0 = nuclei).
        input_divisor: inputs are padded to a multiple of this at the teacher's mpp.
        tta: dihedral test-time views averaged by :meth:`maps` (1: none; 2, 4 or 8).
        weights_sha256: sha256 of the weights file it was loaded from ("" without one).
    """

    name: str = "teacher"
    mpp: float = 0.5
    out_channels: int = 1
    input_divisor: int = 1
    tta: int = 1
    weights_sha256: str = ""

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, out_channels, h, w)`` in [0, 1] for float images ``x`` at ``self.mpp``."""
        raise NotImplementedError

    def postprocess(self, maps: np.ndarray, mpp: float) -> np.ndarray:
        """Instance map (H, W) int32 from one image's maps ``(out_channels, H, W)`` at ``mpp``."""
        raise NotImplementedError

    def teacher_size(self, size: Sequence[int], mpp: float) -> tuple[int, int]:
        """The size ``(h, w)`` an image of ``size`` at ``mpp`` has at the teacher's mpp."""
        scale = float(mpp) / float(self.mpp)
        if abs(scale - 1.0) <= MPP_TOLERANCE:
            return int(size[0]), int(size[1])
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    @torch.no_grad()
    def maps(self, images: torch.Tensor, mpp: float) -> torch.Tensor:
        """All output maps ``(B, out_channels, H, W)`` at the input resolution."""
        if mpp is None or not mpp > 0:
            raise ValueError(f"images need a positive mpp (microns per pixel), got {mpp!r}")
        device = next(iter(self.parameters()), torch.empty(0)).device
        x = to_float(images.to(device))
        h, w = x.shape[-2:]
        th, tw = self.teacher_size((h, w), mpp)
        x = resample(x, (th, tw))
        d = self.input_divisor
        ph, pw = (-th) % d, (-tw) % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(th, tw) > max(ph, pw) else "replicate")
        out = dihedral_mean(self.forward_maps, x, self.tta)[..., :th, :tw]
        return resample(out, (h, w)).clamp_(0.0, 1.0)

    def response(self, images: torch.Tensor, mpp: float) -> torch.Tensor:
        """Nuclei probability ``(B, 1, H, W)`` in [0, 1] at the input resolution."""
        return self.maps(images, mpp)[:, :1]

    def instances(self, images: torch.Tensor, mpp: float) -> list[np.ndarray]:
        """One int32 instance map (H, W) per image, at the input resolution."""
        maps = self.maps(images, mpp).cpu().numpy()
        return [self.postprocess(m, mpp) for m in maps]

    def describe(self) -> dict:
        """Registry-style description of this teacher."""
        return {"name": self.name, "mpp": self.mpp, "out_channels": self.out_channels, "tta": self.tta}
