"""How dataset images become network inputs: the documented size rule of fine-tuning.

Rule (``large_images``):

* ``"tile"`` (default). Images are first resampled to ``input_mpp`` microns/pixel when both it
  and the dataset's ``mpp`` are known (otherwise kept at their native scale). Training takes one
  random ``image_size`` square crop per image per visit (zero-padded, mask padded with
  ``IGNORE``, when the image is smaller). Evaluation covers the whole image with a grid of
  ``image_size`` tiles (the last row/column shifted inwards so no tile leaves the image):
  classification averages the tiles' softmax; segmentation stitches tile logits (averaging
  overlaps) and scores at the dataset's native resolution.
* ``"resize"``. The whole image is resized to ``image_size`` x ``image_size`` (aspect ratio not
  kept) for training and evaluation; segmentation logits are resized back to the mask's size.

Everything here works on uint8 tensors in the DataLoader workers; float conversion,
normalisation and augmentation happen on the device (:mod:`rckd.finetune.tasks`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["IGNORE", "rescale", "TrainView", "EvalView", "tile_origins"]

IGNORE = 255  # mask value ignored by the loss and the metrics


def rescale(sample: dict, scale: float) -> dict:
    """Resize a sample's image (bilinear, antialiased) and mask (nearest) by ``scale``."""
    if abs(scale - 1.0) < 1e-3:
        return sample
    img = sample["image"]
    h, w = img.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = dict(sample)
    out["image"] = F.interpolate(img[None].float(), size=size, mode="bilinear", antialias=True,
                                 align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    if "mask" in sample:
        out["mask"] = F.interpolate(sample["mask"][None, None].float(), size=size,
                                    mode="nearest")[0, 0].long()
    return out


def resize_to(sample: dict, size: int) -> dict:
    """Resize image and mask to ``size`` x ``size``."""
    out = dict(sample)
    out["image"] = F.interpolate(sample["image"][None].float(), size=(size, size), mode="bilinear",
                                 antialias=True, align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    if "mask" in sample:
        out["mask"] = F.interpolate(sample["mask"][None, None].float(), size=(size, size),
                                    mode="nearest")[0, 0].long()
    return out


def _pad_to(sample: dict, size: int) -> dict:
    h, w = sample["image"].shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return sample
    out = dict(sample)
    out["image"] = F.pad(sample["image"], (0, pw, 0, ph), value=0)
    if "mask" in sample:
        out["mask"] = F.pad(sample["mask"], (0, pw, 0, ph), value=IGNORE)
    return out


def tile_origins(length: int, size: int) -> list[int]:
    """Start offsets of tiles of ``size`` covering ``length`` (last one shifted inwards)."""
    if length <= size:
        return [0]
    n = math.ceil(length / size)
    return [min(i * size, length - size) for i in range(n)]


class _View(Dataset):
    """``cache``: keep each decoded, resampled sample in memory after its first read (small
    datasets; every DataLoader worker keeps its own copy)."""

    def __init__(self, dataset: Dataset, image_size: int, scale: float = 1.0, rule: str = "tile",
                 cache: bool = False) -> None:
        if rule not in ("tile", "resize"):
            raise ValueError(f"large_images must be 'tile' or 'resize', not {rule!r}")
        self.dataset, self.image_size, self.scale, self.rule = dataset, int(image_size), float(scale), rule
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def _prepare(self, index: int) -> dict:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sample = self.dataset[index]
        sample = resize_to(sample, self.image_size) if self.rule == "resize" else rescale(sample, self.scale)
        if self._cache is not None:
            self._cache[index] = sample
        return sample


class TrainView(_View):
    """One ``image_size`` training input per sample (random crop, or the resized image).

    Indexed by ``(index, key)`` (the engine's keyed draws), the crop is drawn from a generator
    seeded by ``key``: the same draw gives the same crop in any worker, so a resumed run crops
    exactly as an uninterrupted one. A plain ``index`` uses the global RNG.
    """

    keyed_draws = True

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        gen = None
        if isinstance(index, tuple):
            index, key = index
            gen = torch.Generator().manual_seed(int(key))
        sample = _pad_to(self._prepare(index), self.image_size)
        h, w = sample["image"].shape[-2:]
        s = self.image_size
        if h > s or w > s:
            y = int(torch.randint(h - s + 1, (1,), generator=gen))
            x = int(torch.randint(w - s + 1, (1,), generator=gen))
            sample = dict(sample)
            sample["image"] = sample["image"][:, y:y + s, x:x + s]
            if "mask" in sample:
                sample["mask"] = sample["mask"][y:y + s, x:x + s]
        out = {"image": sample["image"].contiguous()}
        if "label" in sample:
            out["label"] = torch.tensor(int(sample["label"]))
        if "mask" in sample:
            out["mask"] = sample["mask"].contiguous().long()
        return out


class EvalView(_View):
    """The whole (rescaled) image per sample, plus the native mask for scoring."""

    def __getitem__(self, index: int) -> dict:
        raw = self.dataset[index]
        sample = resize_to(raw, self.image_size) if self.rule == "resize" else rescale(raw, self.scale)
        out = {"image": sample["image"]}
        if "label" in raw:
            out["label"] = int(raw["label"])
        if "mask" in raw:
            out["mask"] = raw["mask"].long()  # native resolution: metrics are computed there
        return out
