"""Teacher responses cached in h5 (``rckd teacher predict``), served beside the pool's tiles.

Expected layout (one file, rows in the pool's order): dataset ``responses`` (N, H, W) uint8
(probability x 255) or float in [0, 1]; optional ``coords`` (N, 2) checked against the pool's
``"coord"`` when both exist. A folder holds one cache per tile set (``<stem>.h5``, as
``rckd teacher predict`` writes them), matched to the pool's tile sets by file stem, in the
pool's order; for other pools its ``*.h5`` files are concatenated in sorted order.
Each sample gains ``"target"``; the RCKD task then skips the teacher. :attr:`CachedResponses.teacher`
is the identity of the teacher that made the cache (name, sha256, mpp, test-time views, from the
cache's attributes), so that a student names the teacher it really learned from; caches of one
pool made by different teachers are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["CachedResponses"]

_KEYS = ("responses", "response")


_IDENTITY = {"teacher": "name", "teacher_sha256": "sha256", "teacher_mpp": "mpp", "teacher_tta": "tta"}


def _teacher_identity(files: list[Path]) -> dict:
    """The teacher attributes the cache files share; a mix of teachers is an error."""
    import h5py

    seen: dict | None = None
    for f in files:
        with h5py.File(f, "r") as h:
            ident = {v: _plain(h.attrs[k]) for k, v in _IDENTITY.items() if k in h.attrs}
        if seen is not None and ident != seen:
            raise ValueError(f"{f}: made by teacher {ident}, other files of this cache by {seen}; "
                             "one pool needs one teacher's responses")
        seen = ident
    return seen or {}


def _plain(value):
    return value.item() if hasattr(value, "item") else (value.decode() if isinstance(value, bytes) else value)


class CachedResponses(Dataset):
    """Wrap ``pool`` so that sample ``i`` carries cached response ``i`` as ``"target"``."""

    def __init__(self, pool: Dataset, cache: str | Path) -> None:
        import h5py

        path = Path(cache)
        files = sorted(path.rglob("*.h5")) if path.is_dir() else [path]
        pool_files = getattr(pool, "files", None)
        if path.is_dir() and pool_files:  # one cache per tile set: match by file stem, pool order
            by_stem = {f.stem: f for f in files}
            missing = [Path(p).name for p in pool_files if Path(p).stem not in by_stem]
            if missing:
                raise FileNotFoundError(f"{path}: no cached responses for tile set {missing[0]}")
            files = [by_stem[Path(p).stem] for p in pool_files]
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(f"{path}: teacher response cache not found")
        self.pool, self.mpp = pool, pool.mpp
        self.index: list[tuple[Path, int]] = []
        self.coords: dict[Path, np.ndarray | None] = {}
        tile_hw = tuple(pool[0]["image"].shape[-2:]) if len(pool) else None
        for f in files:
            with h5py.File(f, "r") as h:
                key = next((k for k in _KEYS if k in h), None)
                if key is None:
                    raise ValueError(f"{f}: no 'responses' dataset (is it a 'rckd teacher predict' cache?)")
                n = h[key].shape[0]
                if tile_hw is not None and tuple(h[key].shape[1:3]) != tile_hw:
                    raise ValueError(f"{f}: responses of {h[key].shape[1]}x{h[key].shape[2]} px for tiles "
                                     f"served at {tile_hw[0]}x{tile_hw[1]} px (image_size): predict the "
                                     "cache at the pool's tile size")
                self.coords[f] = h["coords"][:] if "coords" in h else None
            self.index += [(f, i) for i in range(n)]
        if len(self.index) != len(pool):
            raise ValueError(f"{path}: {len(self.index)} cached responses for a pool of {len(pool)} tiles")
        self.teacher = _teacher_identity(files)
        self._handles: dict[Path, object] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = {}  # h5 handles are opened lazily in each worker
        return state

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, f: Path, i: int) -> torch.Tensor:
        import h5py

        if f not in self._handles:
            self._handles[f] = h5py.File(f, "r")
        h = self._handles[f]
        key = next(k for k in _KEYS if k in h)
        return torch.from_numpy(np.asarray(h[key][i]))

    def __getitem__(self, i: int) -> dict:
        sample = dict(self.pool[i])
        f, j = self.index[i]
        coords = self.coords[f]
        if "coord" in sample and coords is not None and not np.array_equal(coords[j], np.asarray(sample["coord"])):
            raise ValueError(f"{f}: cached response {j} is for tile {coords[j].tolist()}, "
                             f"the pool serves {np.asarray(sample['coord']).tolist()} (stale cache?)")
        sample["target"] = self._read(f, j)
        return sample
