"""CRCHistoPhenotypes (Sirinukunwattana et al. 2016): nucleus-type classification crops.

Official layout (``CRCHistoPhenotypes_2016_04_28`` or its ``cls_and_det`` folder)::

    Detection/imgN/imgN.bmp              500x500 H&E at 20x (PNG copies are read too)
    Classification/imgN/imgN_<class>.mat key 'detection': (n, 2) x, y nucleus centres

Classes: epithelial, fibroblast, inflammatory, others (22,444 labelled nuclei in 100 images). Each
sample is a ``crop_size`` square centred on one labelled nucleus (reflect-padded at the border).
Centres are continuous coordinates; the pixel is ``floor(x), floor(y)`` clipped to the image (the
release ranges over 0.15..499.8 on 500 px images, so a 0- or 1-based reading differ by <= 1 px).
No official split and no patient id: images are carved 60/20/20 (``val`` from the training side).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from rckd.data.datasets.base import DatasetError, FileDataset, Item, carve_splits, read_rgb

__all__ = ["CRCHisto", "read_centres"]

CLASSES = ("epithelial", "fibroblast", "inflammatory", "others")
ROOT_NAMES = ("CRCHistoPhenotypes_2016_04_28/cls_and_det", "CRCHistoPhenotypes_2016_04_28", "cls_and_det")


def read_centres(path: Path) -> np.ndarray:
    """(n, 2) float x, y centres of a ``.mat`` file (key ``detection``)."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a readable .mat file ({exc})") from None
    if "detection" not in data:
        raise DatasetError(f"{path}: no 'detection' array in the .mat file")
    arr = np.asarray(data["detection"], dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DatasetError(f"{path}: 'detection' has shape {arr.shape}, expected (n, 2)")
    return arr


class CRCHisto(FileDataset):
    """Nucleus-type crops of CRCHistoPhenotypes, 4 classes."""

    classes = CLASSES
    mpp = 0.55  # 20x, as stated in the dataset paper
    OFFICIAL_COUNTS = {"images": 100, "nuclei": 22444}
    SPLITS = ("train", "val", "test", "all")

    def __init__(self, root: str | Path, split: str = "train", crop_size: int = 32, seed: int = 0,
                 fractions: dict[str, float] | None = None) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"CRCHisto: unknown split {split!r} (known: {', '.join(self.SPLITS)})")
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset root not found")
        base = next((c for c in [root, *(root / n for n in ROOT_NAMES)]
                     if (c / "Classification").is_dir()), None)
        if base is None:
            raise DatasetError(f"{root}: no Classification/ folder (expected Classification/imgN/imgN_<class>.mat)")
        if not (base / "Detection").is_dir():
            raise DatasetError(f"{base / 'Detection'}: folder of images (Detection/imgN/imgN.bmp) not found")
        self.crop_size = int(crop_size)
        self._cache: dict[Path, torch.Tensor] = {}
        images = []
        for folder in sorted((base / "Classification").iterdir(), key=lambda p: _num(p.name)):
            if not folder.is_dir() or not re.fullmatch(r"img\d+", folder.name):
                continue
            image = next((base / "Detection" / folder.name / f"{folder.name}{s}" for s in (".bmp", ".png")
                          if (base / "Detection" / folder.name / f"{folder.name}{s}").is_file()), None)
            if image is None:
                raise DatasetError(f"{base / 'Detection' / folder.name}: image {folder.name}.bmp/.png not found")
            images.append(Item(image, 0, group=folder.name))
        if not images:
            raise DatasetError(f"{base / 'Classification'}: no imgN folders")
        if split != "all":
            images = carve_splits(images, fractions, seed, stratify=False)[split]
        items = []
        for img in images:
            for label, name in enumerate(CLASSES):
                mat = base / "Classification" / img.group / f"{img.group}_{name}.mat"
                if not mat.is_file():
                    raise DatasetError(f"{mat}: class file not found")
                items += [Item(img.path, label, group=img.group, extra=(float(x), float(y)))
                          for x, y in read_centres(mat)]
        super().__init__(base, split, items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        image = self._cache.get(item.path)
        if image is None:
            image = self._cache[item.path] = read_rgb(item.path)
        _, h, w = image.shape
        half = self.crop_size // 2
        cx = int(np.clip(np.floor(item.extra[0]), 0, w - 1))
        cy = int(np.clip(np.floor(item.extra[1]), 0, h - 1))
        padded = torch.nn.functional.pad(image[None].float(), (half, half, half, half), mode="reflect")[0]
        crop = padded[:, cy:cy + self.crop_size, cx:cx + self.crop_size]
        return {"image": crop.to(torch.uint8), "label": int(item.label)}

    @property
    def images(self) -> list[str]:
        """Image names (imgN) in this split."""
        return sorted({it.group for it in self.items}, key=_num)


def _num(name: str) -> int:
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else -1
