"""Shared machinery of the downstream datasets (kaiko-ai/eva style).

Each dataset module declares, as data, its official layout, classes, microns per pixel, official
counts and how its splits are formed; :class:`FileDataset` turns a list of :class:`Item` into a
torch ``Dataset`` of sample dicts (``"image"`` uint8 (3, H, W), ``"label"`` int and/or ``"mask"``
int64 (H, W)). Layout problems raise :class:`DatasetError` (a ``ValueError``) naming the file or
folder; a missing root raises ``FileNotFoundError``.

Splits. Where the release has an official split it is used. Otherwise a deterministic split is
carved: items are grouped (patient where known, else image), groups are ordered by a stable hash
of ``(seed, group)`` and cut by the fractions of :data:`DEFAULT_FRACTIONS`, class by class so every
split keeps the class balance (:func:`carve_splits`). ``val`` is always carved from training data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["Item", "DatasetError", "FileDataset", "carve_splits", "stable_hash", "read_rgb",
           "read_label_map", "require_dir", "DEFAULT_FRACTIONS", "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

#: train / val / test fractions used where a release has no official split.
DEFAULT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")

Image.MAX_IMAGE_PIXELS = None  # microscopy images are big by design; they are trusted local files


class DatasetError(ValueError):
    """A dataset folder that does not match its official layout."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One sample on disk: image path, optional label, mask path, group (patient) and extras."""

    path: Path
    label: int | None = None
    mask: Path | None = None
    group: str = ""
    extra: tuple = ()


def stable_hash(*parts: object) -> int:
    """A process-independent 64-bit hash of ``parts`` (Python's ``hash`` is salted)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def carve_splits(items: Sequence[Item], fractions: dict[str, float] | None = None,
                 seed: int = 0, stratify: bool = True) -> dict[str, list[Item]]:
    """Split ``items`` by group (patient) into named parts, deterministically.

    Groups never straddle two parts. With ``stratify`` groups are assigned class by class (a group's
    class is its most common label), so each part keeps the class balance. Every part that gets a
    non-zero fraction receives at least one group per class when there are enough groups.
    """
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    total = sum(fractions.values())
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.group or str(item.path)].append(item)
    by_class: dict[object, list[str]] = defaultdict(list)
    for name, members in groups.items():
        key = Counter(m.label for m in members).most_common(1)[0][0] if stratify else None
        by_class[key].append(name)
    out: dict[str, list[Item]] = {k: [] for k in fractions}
    for key in sorted(by_class, key=str):
        names = sorted(by_class[key], key=lambda g: stable_hash(seed, g))
        n = len(names)
        bounds, acc = [], 0.0
        for frac in fractions.values():
            acc += frac / total
            bounds.append(int(round(acc * n)))
        start = 0
        for part, end in zip(fractions, bounds):
            for g in names[start:end]:
                out[part].extend(groups[g])
            start = end
    for part in out:
        out[part].sort(key=lambda it: (str(it.path), it.extra))
    return out


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise naming what was expected there."""
    if not path.is_dir():
        if not path.parent.exists():
            raise FileNotFoundError(f"{path}: {what} not found (no such folder)")
        raise DatasetError(f"{path}: {what} not found")
    return path


def read_rgb(path: Path) -> torch.Tensor:
    """Read an image file as a uint8 (3, H, W) RGB tensor."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def read_label_map(path: Path) -> np.ndarray:
    """Read a single-channel label image (8/16-bit) as an int64 array."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read label image ({exc})") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    return np.array(arr, dtype=np.int64)


class FileDataset(torch.utils.data.Dataset):
    """A list of :class:`Item` served as sample dicts.

    Subclasses set ``classes``, ``mpp``, ``OFFICIAL_COUNTS`` (split -> number of samples in the
    full official release) and build ``self.items`` in ``__init__``; ``mask_fn`` turns a mask file
    into the int64 class map (default: read it as is).
    """

    classes: tuple[str, ...] = ()
    mpp: float = float("nan")
    OFFICIAL_COUNTS: dict[str, int] = {}
    task: str = "classification"

    def __init__(self, root: str | Path, split: str, items: Sequence[Item]) -> None:
        self.root = Path(root)
        self.split = split
        self.items = list(items)
        if not self.items:
            raise DatasetError(f"{self.root}: no samples found for split {split!r} "
                               f"of {type(self).__name__}")

    def __len__(self) -> int:
        return len(self.items)

    def load_mask(self, item: Item) -> torch.Tensor:
        """The int64 (H, W) class map of ``item`` (subclasses map instance ids etc.)."""
        return torch.from_numpy(read_label_map(item.mask))

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        sample = {"image": read_rgb(item.path)}
        if item.label is not None:
            sample["label"] = int(item.label)
        if item.mask is not None:
            mask = self.load_mask(item)
            if tuple(mask.shape) != tuple(sample["image"].shape[1:]):
                raise DatasetError(f"{item.mask}: mask size {tuple(mask.shape)} differs from image "
                                   f"{tuple(sample['image'].shape[1:])}")
            sample["mask"] = mask
        return sample

    @property
    def labels(self) -> list[int]:
        """Labels of every item, in order (no image is read)."""
        return [it.label for it in self.items if it.label is not None]

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name."""
        counts = Counter(self.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def validate(self, expected: int | None = None) -> dict[str, int]:
        """Check the split: every class present, files present, and the count if given.

        ``expected`` defaults to nothing (subsets are fine); pass ``self.OFFICIAL_COUNTS[split]``
        (or ``expected="official"``) to insist on the full official release.
        """
        official = ""
        if expected == "official":
            expected, official = self.OFFICIAL_COUNTS.get(self.split), " (the official release)"
        missing = [str(it.path) for it in self.items if not it.path.is_file()]
        missing += [str(it.mask) for it in self.items if it.mask is not None and not it.mask.is_file()]
        if missing:
            raise DatasetError(f"{type(self).__name__} {self.split}: missing files: "
                               f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        counts = self.class_counts() if self.labels else {}
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise DatasetError(f"{self.root}: split {self.split!r} has no samples of class(es) "
                               f"{', '.join(empty)}")
        if expected is not None and len(self) != expected:
            raise DatasetError(f"{self.root}: split {self.split!r} has {len(self)} samples, expected "
                               f"{expected}{official}")
        return counts


def list_images(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES,
                keep: Callable[[Path], bool] | None = None) -> list[Path]:
    """Image files directly in ``folder`` (sorted), optionally filtered by ``keep``."""
    sfx = tuple(s.lower() for s in suffixes)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in sfx
             and not p.name.startswith(".")]
    return sorted(p for p in files if keep is None or keep(p))


__all__.append("list_images")
