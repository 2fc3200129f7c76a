"""Training crops for the nuclei teacher: random scale, rot90/flips, HED colour jitter.

:class:`CropSampler` keeps whole labelled images in memory (MoNuSeg: 30 x 1000^2 pixels) and cuts
random crops resampled to the teacher's mpp, jittered in scale. Targets are the nuclei foreground
and the inner boundary of every nucleus (:func:`skimage.segmentation.find_boundaries`), computed
after resampling so they are one pixel wide at the teacher's resolution. Colour augmentation works
on batches in optical-density space (:func:`hed_jitter`).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from skimage.segmentation import find_boundaries

from rckd.data.augment import OD_UNIT, hed_to_rgb, rgb_to_hed

__all__ = ["CropSampler", "LabelledImage", "hed_jitter", "boundary_target"]


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


class CropSampler:
    """Random training batches from labelled images.

    Args:
        images: the labelled images (any mpp).
        mpp: the teacher's mpp; crops are resampled to it.
        crop: crop side at the teacher's mpp (pixels).
        scale: (min, max) random zoom factor, log-uniform.
        seed: random seed (the sampler is deterministic given it).
        augment: flips, rot90, HED and brightness/contrast jitter when True.
    """

    def __init__(self, images: Sequence[LabelledImage], mpp: float, crop: int = 256,
                 scale: tuple[float, float] = (0.8, 1.25), seed: int = 0, augment: bool = True) -> None:
        if not images:
            raise ValueError("no labelled images to sample crops from")
        self.images, self.mpp, self.crop = list(images), float(mpp), int(crop)
        self.scale, self.augment = scale, augment
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        # sample images in proportion to their area
        areas = np.array([im.nuclei.numel() for im in self.images], dtype=np.float64)
        self.p = areas / areas.sum()

    def _one(self, im: LabelledImage) -> tuple[torch.Tensor, np.ndarray]:
        lo, hi = self.scale
        s = math.exp(self.rng.uniform(math.log(lo), math.log(hi))) if self.augment else 1.0
        h, w = im.nuclei.shape
        side = int(round(self.crop * self.mpp / im.mpp * s))
        side = max(8, min(side, h, w))
        y = int(self.rng.integers(0, h - side + 1))
        x = int(self.rng.integers(0, w - side + 1))
        img = im.image[:, y:y + side, x:x + side].float().div(255).unsqueeze(0)
        inst = im.nuclei[y:y + side, x:x + side].float()[None, None]
        size = (self.crop, self.crop)
        img = F.interpolate(img, size=size, mode="bilinear", align_corners=False,
                            antialias=side > self.crop)[0]
        inst = F.interpolate(inst, size=size, mode="nearest")[0, 0].to(torch.int64)
        if self.augment:
            k = int(self.rng.integers(0, 4))
            img, inst = torch.rot90(img, k, (1, 2)), torch.rot90(inst, k, (0, 1))
            if self.rng.random() < 0.5:
                img, inst = img.flip(2), inst.flip(1)
        return img, inst.numpy()

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (B, 3, c, c) float [0, 1], targets (B, 2, c, c) float {0, 1})``."""
        imgs, targets = [], []
        for i in self.rng.choice(len(self.images), size=batch_size, p=self.p):
            img, inst = self._one(self.images[int(i)])
            imgs.append(img)
            targets.append(np.stack([(inst > 0).astype(np.float32), boundary_target(inst)]))
        x = torch.stack(imgs)
        if self.augment:
            x = _brightness_contrast(hed_jitter(x, self.generator), self.generator)
        return x, torch.from_numpy(np.stack(targets))


def labelled_images(samples: Iterable[dict], mpp: float) -> list[LabelledImage]:
    """Wrap dataset sample dicts (``image``, ``nuclei``) as :class:`LabelledImage`."""
    return [LabelledImage(s["image"], s["nuclei"].to(torch.int32), mpp, str(s.get("name", i)))
            for i, s in enumerate(samples)]
