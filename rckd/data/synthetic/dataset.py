"""``SyntheticDataset``: the synthetic world as a torch Dataset of sample dicts."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .world import SyntheticWorld

__all__ = ["SyntheticDataset", "TASKS"]

TASKS = ("classification", "segmentation", "nuclei", "unlabeled")


class SyntheticDataset(Dataset):
    """``n`` synthetic tiles as sample dicts (see the package conventions).

    Every sample has ``"image"`` (uint8, 3 x H x W). By task:
    ``"classification"`` adds ``"label"``; ``"segmentation"`` adds ``"label"`` and ``"mask"``
    (int64 gland mask, 0/1); ``"nuclei"`` adds ``"mask"`` (int64 nuclei foreground, 0/1) and
    ``"nuclei"`` (int32 instance ids); ``"unlabeled"`` has the image only.
    Sample ``i`` is tile ``offset + i`` of ``SyntheticWorld(seed, size, mpp)``, so datasets with
    different offsets (or seeds) are disjoint.
    """

    def __init__(self, n: int, seed: int = 0, size: int = 256, mpp: float = 0.5,
                 task: str = "classification", offset: int = 0):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.task, self.offset = int(n), task, int(offset)
        self.world = SyntheticWorld(seed=seed, size=size, mpp=mpp)
        self.mpp = self.world.mpp
        self.classes = ("background", "gland") if task == "segmentation" else self.world.classes

    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> list[int]:
        """Class label of every sample, without generating the images."""
        return [self.world.label_of(self.offset + i) for i in range(self.n)]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} samples")
        tile = self.world.tile(self.offset + (i % self.n))
        sample: dict[str, torch.Tensor | int] = {
            "image": torch.from_numpy(np.ascontiguousarray(tile.image.transpose(2, 0, 1)))}
        if self.task in ("classification", "segmentation"):
            sample["label"] = tile.label
        if self.task == "segmentation":
            sample["mask"] = torch.from_numpy(tile.glands.astype(np.int64))
        elif self.task == "nuclei":
            sample["mask"] = torch.from_numpy((tile.nuclei > 0).astype(np.int64))
            sample["nuclei"] = torch.from_numpy(tile.nuclei)
        return sample
