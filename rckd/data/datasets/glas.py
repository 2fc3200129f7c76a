"""GlaS (Warwick-QU, MICCAI 2015): 165 colon H&E images at 0.62 um/px, gland masks and grade.

Official layout (flat): ``<split>_<n>.bmp`` + ``<split>_<n>_anno.bmp`` (gland instance ids, 0 =
background) for split in train (85) / testA (60) / testB (20), and ``Grade.csv`` (old-Mac CR
line endings, padded headers ``name,patient ID, grade (GlaS), ...``). PNG copies are read too.

``task="segmentation"``: ``mask`` = 1 inside any gland, 0 elsewhere. ``task="grade"``: ``label`` =
0 benign / 1 malignant from ``Grade.csv``. Splits: ``test`` = testA + testB (official), ``testA``,
``testB``; ``val`` is carved from the official training set by patient (20 %, stratified by grade)
and ``train`` is the rest; ``train_full`` is the whole official training set.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import torch

from rckd.data.datasets.base import DatasetError, FileDataset, Item, carve_splits, read_label_map

__all__ = ["GlaS", "read_grades"]

_NAME = re.compile(r"^(train|testA|testB)_(\d+)$")
RELEASE_DIR = "Warwick QU Dataset (Released 2016_07_08)"


def read_grades(path: Path) -> dict[str, tuple[str, int]]:
    """``Grade.csv`` as name -> (patient id, 0 benign / 1 malignant)."""
    if not path.is_file():
        raise DatasetError(f"{path}: Grade.csv not found (GlaS grades and patient ids)")
    text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise DatasetError(f"{path}: empty Grade.csv")
    header = [h.strip().lower() for h in rows[0]]
    try:
        i_name, i_pat = header.index("name"), header.index("patient id")
        i_grade = next(i for i, h in enumerate(header) if h.startswith("grade (glas)"))
    except (ValueError, StopIteration):
        raise DatasetError(f"{path}: expected columns 'name', 'patient ID', 'grade (GlaS)', got {rows[0]}") from None
    out = {}
    for row in rows[1:]:
        if not row or not row[0].strip():
            continue
        grade = row[i_grade].strip().lower()
        if grade not in ("benign", "malignant"):
            raise DatasetError(f"{path}: row {row[0].strip()!r} has grade {grade!r}")
        out[row[i_name].strip()] = (row[i_pat].strip(), int(grade == "malignant"))
    return out


class GlaS(FileDataset):
    """GlaS gland segmentation (``task="segmentation"``) or benign/malignant grade (``"grade"``)."""

    mpp = 0.62005
    OFFICIAL_COUNTS = {"train_full": 85, "testA": 60, "testB": 20, "test": 80}
    SPLITS = ("train", "val", "train_full", "test", "testA", "testB", "all")
    SUFFIXES = (".bmp", ".png")

    def __init__(self, root: str | Path, split: str = "train", task: str = "segmentation",
                 seed: int = 0, val_fraction: float = 0.2) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"GlaS: unknown split {split!r} (known: {', '.join(self.SPLITS)})")
        if task not in ("segmentation", "grade"):
            raise ValueError(f"GlaS: task must be 'segmentation' or 'grade', not {task!r}")
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset root not found")
        if (root / RELEASE_DIR).is_dir():
            root = root / RELEASE_DIR
        self.task = "segmentation" if task == "segmentation" else "classification"
        self.classes = ("background", "gland") if task == "segmentation" else ("benign", "malignant")
        grades = read_grades(root / "Grade.csv")
        by_split: dict[str, list[Item]] = {"train": [], "testA": [], "testB": []}
        for path in sorted(root.iterdir()):
            m = _NAME.match(path.stem)
            if not m or path.suffix.lower() not in self.SUFFIXES:
                continue
            anno = next((path.with_name(f"{path.stem}_anno{s}") for s in self.SUFFIXES
                         if path.with_name(f"{path.stem}_anno{s}").is_file()), None)
            if anno is None:
                raise DatasetError(f"{path}: annotation {path.stem}_anno.bmp/.png not found")
            if path.stem not in grades:
                raise DatasetError(f"{root / 'Grade.csv'}: no row for image {path.stem!r}")
            patient, grade = grades[path.stem]
            mask = anno if task == "segmentation" else None
            by_split[m[1]].append(Item(path, grade, mask=mask, group=f"{m[1]}:{patient}"))
        if not any(by_split.values()):
            raise DatasetError(f"{root}: no GlaS images (train_N.bmp, testA_N.bmp, ...) found")
        for name, found in by_split.items():
            if not found:
                raise DatasetError(f"{root}: no images of the official {name!r} split")
        if split in ("train", "val"):
            parts = carve_splits(by_split["train"], {"train": 1 - val_fraction, "val": val_fraction}, seed)
            items = parts[split]
        else:
            items = {"train_full": by_split["train"], "testA": by_split["testA"],
                     "testB": by_split["testB"], "test": by_split["testA"] + by_split["testB"],
                     "all": sum(by_split.values(), [])}[split]
        if task == "segmentation":  # the label only served the stratification
            items = [Item(it.path, None, mask=it.mask, group=it.group) for it in items]
        super().__init__(root, split, items)

    def load_mask(self, item: Item) -> torch.Tensor:
        """Gland instance ids -> 0 background / 1 gland."""
        return torch.from_numpy((read_label_map(item.mask) > 0).astype(np.int64))
