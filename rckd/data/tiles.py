"""Datasets of tiles: from h5 tile sets (ours, CLAM's, TRIDENT's) and from folders of images.

:class:`H5TileDataset` indexes the coordinates of one or more tile sets and serves tiles lazily:
stored pixels (``imgs``) when the file has them, else a read from the slide. h5 files and
slides are opened on first use in each process (DataLoader workers never share a handle,
PyTorch #11928) and kept open per process. Samples follow the project convention: ``"image"``
uint8 (3, H, W) RGB, plus ``"coord"`` int64 (x, y) level 0 and ``"slide"`` (index of the file).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from rckd.data.wsi.extract import read_tile, resize_tile
from rckd.data.wsi.grid import GridGeometry, best_level
from rckd.data.wsi.h5format import IMGS, TileSetInfo, read_tile_set, slide_stems
from rckd.data.wsi.reader import IMAGE_SUFFIXES, open_slide

__all__ = ["H5TileDataset", "ImageFolderTiles"]


def _h5_files(source) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    files: list[Path] = []
    for item in source:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.h5")) or sorted((p / "patches").glob("*.h5"))
            if not found:
                raise FileNotFoundError(f"{p}: no .h5 tile sets (looked in it and in patches/)")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such tile set or folder")
    return files


class H5TileDataset(Dataset):
    """Tiles of h5 tile sets, served lazily.

    Args:
        h5_paths_or_dir: one h5 file, a folder of them (or a run folder with ``patches/``), or a list.
        slide_root: folder to find slides in when the file does not record a usable path
            (CLAM/TRIDENT files, or slides moved since tiling): ``<root>/<stem>.*`` for the
            stems of :func:`rckd.data.wsi.h5format.slide_stems` (the ``name`` attribute, the
            file stem without TRIDENT's ``_patches``).
        size: output tile side; default the tile set's own.
        slide_mpp: level-0 mpp of slides whose file states none (CLAM and TRIDENT tile sets do
            not record it; rckd's do).
    """

    def __init__(self, h5_paths_or_dir, slide_root: str | os.PathLike | None = None, size: int | None = None,
                 slide_mpp: float | None = None):
        self.files = _h5_files(h5_paths_or_dir)
        self.slide_root = Path(slide_root) if slide_root else None
        self.slide_mpp = slide_mpp
        self.infos: list[TileSetInfo] = [read_tile_set(f) for f in self.files]
        self.size = int(size or self.infos[0].patch_size) if self.infos else int(size or 0)
        counts = np.array([len(i) for i in self.infos], np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self.mpp = self._mpp()
        self._pid = None
        self._h5: dict[int, h5py.File] = {}
        self._slides: dict[int, tuple] = {}

    def _mpp(self) -> float:
        """Microns per pixel of the served tiles (needs the slide for CLAM/TRIDENT files)."""
        info = self.infos[0] if self.infos else None
        if info is None:
            return float("nan")
        if info.target_mpp is not None:
            mpp = info.target_mpp
        else:
            with open_slide(self._slide_path(0), mpp=self.slide_mpp) as reader:
                if reader.mpp is None:
                    return float("nan")
                mpp = self._geometry(0, reader.level_downsamples, reader.mpp).target_mpp
        return float(mpp * info.patch_size / self.size)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _slide_path(self, k: int) -> Path:
        info = self.infos[k]
        if info.slide_path and Path(info.slide_path).exists():
            return Path(info.slide_path)
        stems = slide_stems(info)
        if self.slide_root is not None:
            for stem in stems:
                for cand in sorted(self.slide_root.glob(f"{glob.escape(stem)}.*")):
                    if cand.suffix.lower() != ".h5":
                        return cand
        raise FileNotFoundError(f"{info.path}: slide {' or '.join(repr(s) for s in stems)} not found"
                                + (f" in {self.slide_root}" if self.slide_root else " (give slide_root)"))

    def _geometry(self, k: int, downsamples, level0_mpp: float) -> GridGeometry:
        info = self.infos[k]
        if info.format == "trident":  # TRIDENT states the footprint only: read the level that fits it
            level = best_level(info.patch_size_level0 / info.patch_size, downsamples)
            ds = float(downsamples[level])
            size0, read_size = info.patch_size_level0, int(round(info.patch_size_level0 / ds))
        else:  # ours, and CLAM's patch_size pixels at patch_level
            level = min(info.read_level, len(downsamples) - 1)
            ds = float(downsamples[level])
            size0 = info.patch_size_level0 or int(round(info.patch_size * ds))
            read_size = info.read_size
        target = info.target_mpp or level0_mpp * size0 / info.patch_size
        return GridGeometry(level0_mpp, target, info.patch_size, 0, size0, float(size0), level, ds, read_size)

    def _open(self, k: int):
        if self._pid != os.getpid():  # first use in this process (e.g. a DataLoader worker)
            self._h5, self._slides, self._pid = {}, {}, os.getpid()
        if self.infos[k].has_images:
            if k not in self._h5:
                self._h5[k] = h5py.File(self.files[k], "r")
            return self._h5[k], None
        if k not in self._slides:
            reader = open_slide(self._slide_path(k), mpp=self.infos[k].level0_mpp or self.slide_mpp)
            self._slides[k] = (reader, self._geometry(k, reader.level_downsamples, reader.mpp or 1.0))
        return None, self._slides[k]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        i = index - int(self._offsets[k])
        h5, slide = self._open(k)
        if h5 is not None:
            tile = h5[IMGS][i]
        else:
            reader, geom = slide
            x, y = self.infos[k].coords[i]
            tile = read_tile(reader, int(x), int(y), geom)
        tile = np.array(resize_tile(np.asarray(tile), self.size), copy=True)
        return {"image": torch.from_numpy(tile).permute(2, 0, 1).contiguous(),
                "coord": torch.from_numpy(self.infos[k].coords[i].copy()), "slide": k}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_h5={}, _slides={}, _pid=None)  # handles never cross process boundaries
        return state


class ImageFolderTiles(Dataset):
    """Image files under ``root`` as tiles of ``size`` px at ``mpp`` microns per pixel.

    Images in sub-folders get labels from the folder names (sorted, ``.classes``); images
    directly in ``root`` are unlabelled. Each image is resized (area filter) to ``size``.
    """

    def __init__(self, root: str | os.PathLike, size: int, mpp: float):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder")
        self.size, self.mpp = int(size), float(mpp)
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{self.root}: no images ({', '.join(IMAGE_SUFFIXES)})")
        dirs = sorted({p.parent.relative_to(self.root).parts[0] for p in files if p.parent != self.root})
        self.classes = tuple(dirs)
        self.files = files
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels = [index[p.relative_to(self.root).parts[0]] if p.parent != self.root else -1
                       for p in files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        with Image.open(self.files[index]) as img:
            arr = np.asarray(img.convert("RGB"))
        if arr.shape[0] != self.size or arr.shape[1] != self.size:
            resample = Image.Resampling.BOX if min(arr.shape[:2]) >= self.size else Image.Resampling.BICUBIC
            arr = np.asarray(Image.fromarray(arr).resize((self.size, self.size), resample))
        sample = {"image": torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).contiguous()}
        if self.labels[index] >= 0:
            sample["label"] = self.labels[index]
        return sample
