"""Unlabeled pools for pretraining: the synthetic world, h5 tile sets, image folders.

``build_pool("synthetic", ...)`` is the default (no downloads); a path to an ``.h5`` file or a
folder holding ``.h5`` tile sets (from ``rckd tile``) gives :class:`rckd.data.tiles.H5TileDataset`;
any other folder is read as images by :class:`rckd.data.tiles.ImageFolderTiles`. Pools that fit
in ``memory_limit_mb`` are materialised in memory once (in parallel workers) so that epochs
after the first cost nothing; larger ones are read lazily by the DataLoader workers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["build_pool", "MemoryDataset"]

log = logging.getLogger(__name__)


class MemoryDataset(Dataset):
    """A dataset's samples held as stacked tensors (keys of the first sample)."""

    def __init__(self, dataset: Dataset, workers: int = 0, batch_size: int = 32) -> None:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
        parts: dict[str, list[torch.Tensor]] = {}
        for batch in loader:
            for k, v in batch.items():
                if isinstance(v, torch.Tensor):
                    parts.setdefault(k, []).append(v)
        self.data = {k: torch.cat(v) for k, v in parts.items()}
        self.mpp = float(getattr(dataset, "mpp"))
        self.classes = getattr(dataset, "classes", None)
        self.files = getattr(dataset, "files", None)  # tile sets, for matching response caches

    def __len__(self) -> int:
        return len(next(iter(self.data.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.data.items()}


def _has_h5(path: Path) -> bool:
    return path.suffix == ".h5" or (path.is_dir() and any(path.rglob("*.h5")))


def build_pool(spec: str, image_size: int, mpp: float, n: int, seed: int = 0,
               slide_root: str | None = None, memory_limit_mb: int = 1024, workers: int = 0) -> Dataset:
    """The unlabeled pool named by ``spec`` (see the module docstring); every sample has ``"image"``.

    ``n`` is the size of the synthetic pool (ignored for files). ``mpp`` is the synthetic pool's
    and image folders' resolution; h5 tile sets carry their own.
    """
    if spec == "synthetic":
        from rckd.data.synthetic import SyntheticDataset

        pool: Dataset = SyntheticDataset(n, seed=seed, size=image_size, mpp=mpp, task="unlabeled")
    else:
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"{path}: pool not found (use 'synthetic', an h5 tile set or an image folder)")
        from rckd.data import tiles

        if _has_h5(path):  # a folder: every tile set below it, in sorted order (as CachedResponses)
            files = [path] if path.is_file() else sorted(path.rglob("*.h5"))
            pool = tiles.H5TileDataset(files, slide_root=slide_root, size=image_size)
        else:
            pool = tiles.ImageFolderTiles(path, image_size, mpp)
    if len(pool) * 3 * image_size ** 2 <= memory_limit_mb * 2 ** 20:
        pool = MemoryDataset(pool, workers=workers)
    return pool
