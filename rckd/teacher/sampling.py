"""Training crops for the nuclei teacher: random scale, rot90/flips, HED colour jitter.

:class:`TeacherCrops` keeps whole labelled images in memory (MoNuSeg: 30 x 1000^2 pixels) and cuts
random crops resampled to the teacher's mpp, jittered in scale. Targets are the nuclei foreground
and the inner boundary of every nucleus (:func:`skimage.segmentation.find_boundaries`), computed
after resampling so they are one pixel wide at the teacher's resolution. Colour augmentation works
in optical-density space (:func:`hed_jitter`).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from skimage.segmentation import find_boundaries

from rckd.data.augment import OD_UNIT, hed_to_rgb, rgb_to_hed

__all__ = ["TeacherCrops", "LabelledImage", "labelled_images", "hed_jitter", "boundary_target"]


class LabelledImage:
    """An RGB uint8 image ``(3, H, W)`` with int32 instance ids ``(H, W)`` at ``mpp``."""

    def __init__(self, image: torch.Tensor, nuclei: torch.Tensor, mpp: float, name: str = "") -> None:
        self.image, self.nuclei, self.mpp, self.name = image, nuclei, float(mpp), name


def boundary_target(inst: np.ndarray) -> np.ndarray:
    """Inner contour of every instance (pixels of a nucleus touching anything else), 0/1 float."""
    return find_boundaries(inst, mode="inner").astype(np.float32)


def hed_jitter(x: torch.Tensor, generator: torch.Generator, strength: float = 0.25,
               shift: float = 0.05) -> torch.Tensor:
    """Scale and shift each stain's optical density per image (float RGB [0, 1], (B, 3, H, W)).

    Scales are ``1 +- strength``; shifts ``+- shift`` in natural-log optical density.
    """
    b = x.shape[0]
    alpha = 1 + (torch.rand(b, 3, 1, 1, generator=generator) * 2 - 1) * strength
    beta = (torch.rand(b, 3, 1, 1, generator=generator) * 2 - 1) * shift
    hed = rgb_to_hed(x.clamp(min=1e-3))
    return hed_to_rgb(hed * alpha.to(x) + beta.to(x) / OD_UNIT)


def _brightness_contrast(x: torch.Tensor, generator: torch.Generator, amount: float = 0.1) -> torch.Tensor:
    b = x.shape[0]
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * amount
    bias = (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * amount / 2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * gain + mean + bias).clamp(0, 1)


class TeacherCrops(Dataset):
    """Random training crops as a map-style dataset: sample ``i`` is drawn from its own seed.

    Each index picks an image (in proportion to its area), a log-uniform zoom, a position, a
    dihedral transform and a colour jitter from ``numpy.random.default_rng([seed, i])``, so the
    engine's sampler (a permutation of ``range(length)``) sees ``length`` different crops and a
    resumed run continues with exactly the crops it would have drawn.

    Args:
        images: the labelled images (any mpp).
        mpp: the teacher's mpp; crops are resampled to it.
        crop: crop side at the teacher's mpp (pixels).
        length: number of distinct samples (the engine's epoch).
        scale: (min, max) random zoom factor, log-uniform.
        seed: random seed.
        augment: flips, rot90, HED and brightness/contrast jitter when True.
    """

    def __init__(self, images: Sequence[LabelledImage], mpp: float, crop: int = 256, length: int = 100_000,
                 scale: tuple[float, float] = (0.8, 1.25), seed: int = 0, augment: bool = True) -> None:
        if not images:
            raise ValueError("no labelled images to sample crops from")
        self.images, self.mpp, self.crop, self.length = list(images), float(mpp), int(crop), int(length)
        self.scale, self.seed, self.augment = scale, int(seed), augment
        areas = np.array([im.nuclei.numel() for im in self.images], dtype=np.float64)
        self.p = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def _crop(self, im: LabelledImage, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        lo, hi = self.scale
        s = math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.augment else 1.0
        h, w = im.nuclei.shape
        side = max(8, min(int(round(self.crop * self.mpp / im.mpp * s)), h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        img = im.image[:, y:y + side, x:x + side].float().div(255).unsqueeze(0)
        inst = im.nuclei[y:y + side, x:x + side].float()[None, None]
        size = (self.crop, self.crop)
        img = F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=side > self.crop)
        inst = F.interpolate(inst, size=size, mode="nearest")[0, 0].to(torch.int64)
        if self.augment:
            k = int(rng.integers(0, 4))
            img, inst = torch.rot90(img, k, (2, 3)), torch.rot90(inst, k, (0, 1))
            if rng.random() < 0.5:
                img, inst = img.flip(3), inst.flip(1)
            g = torch.Generator().manual_seed(int(rng.integers(2**62)))
            img = _brightness_contrast(hed_jitter(img, g), g)
        return img[0], inst.numpy()

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """``{"image": (3, c, c) float [0, 1], "target": (2, c, c) float {0, 1}}`` (nuclei, boundary)."""
        rng = np.random.default_rng([self.seed, int(i)])
        img, inst = self._crop(self.images[int(rng.choice(len(self.images), p=self.p))], rng)
        target = np.stack([(inst > 0).astype(np.float32), boundary_target(inst)])
        return {"image": img, "target": torch.from_numpy(target)}


def labelled_images(samples: Iterable[dict], mpp: float) -> list[LabelledImage]:
    """Wrap dataset sample dicts (``image``, ``nuclei``) as :class:`LabelledImage`."""
    return [LabelledImage(s["image"], s["nuclei"].to(torch.int32), mpp, str(s.get("name", i)))
            for i, s in enumerate(samples)]
