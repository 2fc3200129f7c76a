"""MoNuSeg behind the registry: image-level train / val / test carved from one folder.

:class:`rckd.data.datasets.monuseg.MoNuSeg` (the teachers' module) reads a folder; the registry
needs splits. The official 14 test images are not in the shared copy, so the images found under
``root`` are carved 60/20/20 by image (stable hash, ``seed``); ``split="all"`` keeps them all.
"""

from __future__ import annotations

from pathlib import Path

from rckd.data.datasets.base import Item, carve_splits

__all__ = ["monuseg_split"]


def monuseg_split(root: str | Path, split: str = "train", seed: int = 0,
                  fractions: dict[str, float] | None = None, source: str = "auto"):
    """A ``MoNuSeg`` dataset restricted to the images of ``split``."""
    from rckd.data.datasets.monuseg import MoNuSeg

    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"monuseg: unknown split {split!r} (known: train, val, test, all)")
    full = MoNuSeg(root, source=source)
    if split == "all":
        return full
    items = [Item(Path(n), 0, group=n) for n in full.names]
    names = [it.group for it in carve_splits(items, fractions, seed, stratify=False)[split]]
    ds = MoNuSeg(root, names=names, source=source)
    ds.task = "segmentation"
    return ds
