"""Colorectal cancer tissue tiles: Kather 2016 (8 classes) and NCT-CRC-HE-100K / CRC-VAL-HE-7K (9).

Kather 2016 (Zenodo 53169): ``Kather_texture_2016_image_tiles_5000/<01_TUMOR..08_EMPTY>/*.tif``,
5,000 tiles of 150x150 at 0.495 um/px, 625 per class. No official split: train/val/test are carved
60/20/20 per class, by tile (the tiles carry no patient id).

NCT-CRC-HE-100K (Zenodo 1214456): ``NCT-CRC-HE-100K/<ADI..TUM>/*.tif`` (100,000 tiles, 224x224,
0.5 um/px) is the training set and ``CRC-VAL-HE-7K/<ADI..TUM>/*.tif`` (7,180 tiles, other patients)
the official test set; ``val`` is carved from the training set (10 %, per class). A root that holds
the class folders directly (e.g. a sample) is split like Kather 2016. ``.png`` copies are accepted.
"""

from __future__ import annotations

from pathlib import Path

from rckd.data.datasets.base import DatasetError, FileDataset, carve_splits
from rckd.data.datasets.folders import ClassFolderDataset, class_folder_items, find_root

__all__ = ["Kather2016", "NCTCRC"]


class Kather2016(ClassFolderDataset):
    """Kather 2016 colorectal texture tiles, 8 classes (folder order)."""

    FOLDERS = ("01_TUMOR", "02_STROMA", "03_COMPLEX", "04_LYMPHO", "05_DEBRIS", "06_MUCOSA",
               "07_ADIPOSE", "08_EMPTY")
    classes = tuple(f[3:].lower() for f in FOLDERS)
    ROOT_NAMES = ("Kather_texture_2016_image_tiles_5000",)
    mpp = 0.495
    OFFICIAL_COUNTS = {"all": 5000, "train": 3000, "val": 1000, "test": 1000}


class NCTCRC(FileDataset):
    """NCT-CRC-HE-100K (train/val) and CRC-VAL-HE-7K (test), 9 classes."""

    FOLDERS = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
    classes = ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth_muscle",
               "normal_mucosa", "stroma", "tumor")
    TRAIN_DIR, TEST_DIR = "NCT-CRC-HE-100K", "CRC-VAL-HE-7K"
    SUFFIXES = (".tif", ".tiff", ".png")
    mpp = 0.5
    OFFICIAL_COUNTS = {"train": 90000, "val": 10000, "test": 7180}
    SPLITS = ("train", "val", "test", "all")

    def __init__(self, root: str | Path, split: str = "train", seed: int = 0,
                 val_fraction: float = 0.1) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"NCTCRC: unknown split {split!r} (known: {', '.join(self.SPLITS)})")
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset root not found")
        if (root / self.TRAIN_DIR).is_dir() or (root / self.TEST_DIR).is_dir():
            if split == "all":
                raise ValueError("NCTCRC: split 'all' is only for a single class-folder tree")
            if split == "test":
                base = root / self.TEST_DIR
                if not base.is_dir():
                    raise DatasetError(f"{base}: official test set folder not found")
                items = class_folder_items(base, self.FOLDERS, self.SUFFIXES)
            else:
                base = root / self.TRAIN_DIR
                if not base.is_dir():
                    raise DatasetError(f"{base}: official training set folder not found")
                items = class_folder_items(base, self.FOLDERS, self.SUFFIXES)
                items = carve_splits(items, {"train": 1 - val_fraction, "val": val_fraction}, seed)[split]
        else:
            base = find_root(root, (), self.FOLDERS)
            items = class_folder_items(base, self.FOLDERS, self.SUFFIXES)
            if split != "all":
                items = carve_splits(items, None, seed)[split]
        super().__init__(base, split, items)
