"""Class-per-folder datasets (Kather 2016, NCT-CRC-HE, Lymphoma, BACH photos): one helper.

A root holds one folder per class; the label is the folder's position in ``classes``. Releases
without an official split are carved by :func:`rckd.data.datasets.base.carve_splits`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from rckd.data.datasets.base import (DatasetError, FileDataset, Item, carve_splits, list_images,
                                     require_dir)

__all__ = ["class_folder_items", "find_root", "ClassFolderDataset"]


def find_root(root: Path, names: Sequence[str], marker: Sequence[str]) -> Path:
    """The folder holding ``marker`` (class folders): ``root`` itself or ``root/<name>`` for a name."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset root not found")
    for cand in [root, *(root / n for n in names)]:
        if cand.is_dir() and any((cand / m).is_dir() for m in marker):
            return cand
    raise DatasetError(f"{root}: none of the class folders {', '.join(marker)} found "
                       f"(looked in {root} and {', '.join(str(root / n) for n in names)})")


def class_folder_items(root: Path, folders: Sequence[str], suffixes: Sequence[str],
                       group: Callable[[Path], str] | None = None) -> list[Item]:
    """Items of every class folder under ``root``; each folder must exist and hold images."""
    items: list[Item] = []
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        raise DatasetError(f"{root}: missing class folder(s): {', '.join(missing)}")
    for label, folder in enumerate(folders):
        files = list_images(require_dir(root / folder, f"class folder {folder!r}"), suffixes)
        if not files:
            raise DatasetError(f"{root / folder}: no images ({'/'.join(suffixes)}) in class folder")
        items += [Item(p, label, group=group(p) if group else "") for p in files]
    return items


class ClassFolderDataset(FileDataset):
    """Class-per-folder release without an official split: carved train/val/test.

    Subclasses set ``classes``, ``FOLDERS`` (folder name per class), ``ROOT_NAMES`` (official
    top folder names to descend into), ``SUFFIXES`` and ``mpp``.
    """

    FOLDERS: tuple[str, ...] = ()
    ROOT_NAMES: tuple[str, ...] = ()
    SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png")
    SPLITS = ("train", "val", "test", "all")

    def __init__(self, root: str | Path, split: str = "train", seed: int = 0,
                 fractions: dict[str, float] | None = None) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"{type(self).__name__}: unknown split {split!r} (known: {', '.join(self.SPLITS)})")
        base = find_root(Path(root), self.ROOT_NAMES, self.FOLDERS)
        items = class_folder_items(base, self.FOLDERS, self.SUFFIXES, self.group_of)
        if split != "all":
            items = carve_splits(items, fractions, seed)[split]
        super().__init__(base, split, items)

    def group_of(self, path: Path) -> str:
        """The group (patient/slide) a file belongs to; default: the file itself."""
        return ""
