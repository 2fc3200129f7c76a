"""The unlabeled pool's sources and its manifest.

A pool (``pool.sources`` of a grid) lists entries of two kinds::

    {path: GLOB, mpp: X}                                slides or images (mpp where the file has none)
    {dataset: NAME, root: DIR, split: train, options: {...}}   the images of a labelled dataset's
                                                         train split, at the dataset's mpp

Only the ``train`` split of a labelled dataset may enter a pool: its val and test images must stay
unseen by every pretraining method, so any other split is refused. :func:`resolve_sources` turns
the entries into :class:`PoolSource` rows (one per file) for ``rckd tile``; :func:`pool_manifest`
records what the tiled pool holds (sources, files and tiles per source, mpp, tile size).
"""

from __future__ import annotations

import dataclasses
import glob
from collections import Counter
from pathlib import Path
from typing import Iterable

__all__ = ["PoolSource", "resolve_sources", "dataset_split_files", "pool_manifest", "MANIFEST"]

MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class PoolSource:
    """One file of the pool: its path, level-0 mpp (None: the file's own) and the entry it came from."""

    path: Path
    mpp: float | None
    source: str


def _under(root: str | Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(root) / p


def dataset_split_files(name: str, root: str | Path, split: str = "train",
                        options: dict | None = None) -> tuple[list[Path], float]:
    """The distinct image files of one split of a registered dataset, and the dataset's mpp."""
    from rckd.data.datasets import get_dataset

    ds = get_dataset(name, str(root), split, **(options or {}))
    return sorted({Path(it.path).resolve() for it in ds.items}), float(ds.mpp)


def _entry(entry: dict, data_root: str | Path, where: str) -> list[PoolSource]:
    if "dataset" in entry:
        split = entry.get("split", "train")
        if split != "train":
            raise ValueError(f"{where}: split {split!r} of {entry['dataset']} cannot enter the pool "
                             "(only train: val and test images must stay unseen)")
        root = _under(data_root, entry.get("root", entry["dataset"]))
        files, mpp = dataset_split_files(entry["dataset"], root, split, entry.get("options"))
        label = f"{entry['dataset']}:{split}"
        return [PoolSource(f, entry.get("mpp", mpp), label) for f in files]
    if "path" not in entry:
        raise ValueError(f"{where}: a pool source needs 'path' (slides/images) or 'dataset'")
    pattern = str(_under(data_root, entry["path"]))
    matches = sorted(Path(m).resolve() for m in glob.glob(pattern))
    if not matches:
        raise FileNotFoundError(f"{pattern}: pool slide(s) not found ({where})")
    return [PoolSource(m, entry.get("mpp"), entry["path"]) for m in matches]


def resolve_sources(entries: Iterable[dict], data_root: str | Path) -> list[PoolSource]:
    """Every file of the pool's ``entries`` (see the module docstring), each once."""
    rows: dict[Path, PoolSource] = {}
    for i, entry in enumerate(entries):
        for row in _entry(dict(entry), data_root, f"pool.sources[{i}]"):
            rows.setdefault(row.path, row)
    return list(rows.values())


def pool_manifest(sources: list[PoolSource], tile_sets: list[Path], tile: dict) -> dict:
    """What a tiled pool holds: per source its files and tiles; mpp and tile size; every file.

    ``tile_sets`` are the pool's h5 files (named after the source files' stems, as ``rckd tile``
    names them); ``tile`` the tiling options (target mpp, patch size, overlap, ...).
    """
    from rckd.data.wsi.h5format import read_tile_set
    from rckd.io import safe_name

    counts = {}
    for f in tile_sets:
        counts[f.stem] = len(read_tile_set(f).coords)
    by_source: dict[str, Counter] = {}
    files = []
    for s in sources:
        n = counts.get(safe_name(s.path.stem), 0)
        c = by_source.setdefault(s.source, Counter())
        c["files"] += 1
        c["tiles"] += n
        files.append({"path": str(s.path), "mpp": s.mpp, "source": s.source, "tiles": n})
    return {"sources": {k: dict(v) for k, v in by_source.items()},
            "files": files, "tiles": sum(counts.values()), "tile": dict(tile)}
