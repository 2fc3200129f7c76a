"""BreakHis v1 (Spanhol et al. 2016): breast tumour microscopy, 7,909 images 700x460, 82 patients.

Official layout::

    BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/<type>/SOB_<B|M>_<T>_<patient>/<mag>X/
        SOB_<B|M>_<T>-<yy>-<patient>-<mag>-<seq>.png

Labels come from the file name (checked against the folders when the nested layout is present):
``labels="binary"`` (benign / malignant) or ``"subtype"`` (8 classes). ``magnification`` keeps one
of 40/100/200/400 (None: all). There is no official split: patients are carved 60/20/20, stratified
by subtype, so no patient straddles two splits. Flat copies (``benign/*.png``) are read too.
"""

from __future__ import annotations

import re
from pathlib import Path

from rckd.data.datasets.base import DatasetError, FileDataset, Item, carve_splits

__all__ = ["BreakHis", "parse_name", "SUBTYPES"]

#: code -> (folder name, benign=0 / malignant=1)
SUBTYPES = {"A": ("adenosis", 0), "F": ("fibroadenoma", 0), "PT": ("phyllodes_tumor", 0),
            "TA": ("tubular_adenoma", 0), "DC": ("ductal_carcinoma", 1), "LC": ("lobular_carcinoma", 1),
            "MC": ("mucinous_carcinoma", 1), "PC": ("papillary_carcinoma", 1)}
_CODES = tuple(SUBTYPES)
_NAME = re.compile(r"^SOB_(?P<bm>[BM])_(?P<t>[A-Z]+)-(?P<yy>\d+)-(?P<patient>[0-9A-Za-z]+)"
                   r"-(?P<mag>\d+)-(?P<seq>\d+)\.png$", re.IGNORECASE)
MAGNIFICATIONS = (40, 100, 200, 400)


def parse_name(name: str) -> dict:
    """Fields of a BreakHis file name: tumour class, subtype code, patient, magnification."""
    m = _NAME.match(name)
    if not m:
        raise DatasetError(f"{name}: not a BreakHis file name (SOB_<B|M>_<type>-<yy>-<patient>-<mag>-<seq>.png)")
    code = m["t"].upper()
    if code not in SUBTYPES:
        raise DatasetError(f"{name}: unknown tumour type {code!r} (known: {', '.join(_CODES)})")
    malignant = m["bm"].upper() == "M"
    if SUBTYPES[code][1] != malignant:
        raise DatasetError(f"{name}: type {code} contradicts the {'M' if malignant else 'B'} flag")
    return {"malignant": int(malignant), "subtype": _CODES.index(code), "code": code,
            "patient": f"{m['yy']}-{m['patient']}", "mag": int(m["mag"])}


class BreakHis(FileDataset):
    """BreakHis v1, binary or 8-class labels, patient-level splits, optional magnification filter."""

    mpp = float("nan")  # per magnification: see MPP
    MPP = {40: 0.625, 100: 0.25, 200: 0.125, 400: 0.0625}  # approximate, from 6.25x camera optics
    OFFICIAL_COUNTS = {"all": 7909, "patients": 82, 40: 1995, 100: 2081, 200: 2013, 400: 1820}
    SPLITS = ("train", "val", "test", "all")

    def __init__(self, root: str | Path, split: str = "train", labels: str = "binary",
                 magnification: int | None = None, seed: int = 0,
                 fractions: dict[str, float] | None = None) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"BreakHis: unknown split {split!r} (known: {', '.join(self.SPLITS)})")
        if labels not in ("binary", "subtype"):
            raise ValueError(f"BreakHis: labels must be 'binary' or 'subtype', not {labels!r}")
        if magnification is not None and int(magnification) not in MAGNIFICATIONS:
            raise ValueError(f"BreakHis: magnification must be one of {MAGNIFICATIONS}, not {magnification}")
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset root not found")
        self.labels_kind = labels
        self.classes = (("benign", "malignant") if labels == "binary"
                        else tuple(SUBTYPES[c][0] for c in _CODES))
        if magnification is not None:
            self.mpp = self.MPP[int(magnification)]
        files = sorted(p for p in root.rglob("SOB_*") if p.suffix.lower() == ".png")
        if not files:
            raise DatasetError(f"{root}: no BreakHis images (SOB_*.png) found; expected "
                               "BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/...")
        items = []
        for path in files:
            info = parse_name(path.name)
            self._check_folders(path, info)
            if magnification is not None and info["mag"] != int(magnification):
                continue
            items.append(Item(path, info["subtype"], group=info["patient"], extra=(info["malignant"],)))
        if split != "all":
            items = carve_splits(items, fractions, seed)[split]  # stratified by subtype
        if labels == "binary":
            items = [Item(it.path, it.extra[0], group=it.group, extra=it.extra) for it in items]
        super().__init__(root, split, items)

    @staticmethod
    def _check_folders(path: Path, info: dict) -> None:
        """In the nested layout the folders must agree with the file name."""
        parts = path.parts
        if "SOB" not in parts:
            return
        mag_dir = path.parent.name
        if mag_dir.upper() != f"{info['mag']}X":
            raise DatasetError(f"{path}: magnification folder {mag_dir!r} does not match the name")
        i = len(parts) - 1 - parts[::-1].index("SOB")
        tumour = parts[i - 1].lower() if i >= 1 else ""
        if tumour not in ("benign", "malignant") or (tumour == "malignant") != bool(info["malignant"]):
            raise DatasetError(f"{path}: class folder {tumour!r} does not match the name")

    @property
    def patients(self) -> set[str]:
        """Patient ids in this split."""
        return {it.group for it in self.items}
