"""Synthetic whole-slide images: pyramidal tiled TIFFs that OpenSlide opens.

Tissue islands on glass are composed from a small bank of synthetic tiles (every class, all
eight flips/rotations), so a 20,000 x 20,000 slide takes seconds, not hours. Each pyramid level
is composed directly at its own resolution from a matching downsampled bank and a low-resolution
tissue mask, tile by tile, and streamed to tifffile: memory stays bounded by a few tiles.

Layout: one TIFF page per level (level 0 first, then halvings, each a tiled page with
``subfiletype=1``), which OpenSlide's generic-tiff reader turns into levels. With ``mpp`` the
pages carry ``XResolution``/``YResolution`` in pixels per centimetre and
``ResolutionUnit=CENTIMETER``, which OpenSlide reports as ``openslide.mpp-x``/``mpp-y``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from rckd.io import atomic_path

from .fields import smooth_noise
from .stain import sample_stain
from .world import SyntheticWorld, _single_thread_blas

__all__ = ["write_synthetic_slide", "GLASS"]

log = logging.getLogger(__name__)

GLASS = (242, 241, 239)     #: RGB of empty glass
_CELL = 256                 # bank tile side, level-0 pixels
_GRID = 64                  # tissue-mask lattice spacing, level-0 pixels
_MAX_BANK_LEVEL = 6         # deepest bank downsample (cell side 4 px)
_PER_CLASS = 4              # bank tiles per class


@dataclass
class _Layout:
    """Everything that defines the slide's content, independent of pyramid level."""

    alpha: np.ndarray         # (gh, gw) float32 tissue fraction on the mask lattice
    cells: np.ndarray         # (ch, cw) int bank index per level-0 cell
    banks: list[np.ndarray]   # banks[k]: (B, 256 >> k, 256 >> k, 3) uint8


def _level_dims(width: int, height: int, tile: int, n_levels: int | None) -> list[tuple[int, int]]:
    if n_levels is None:
        n_levels = 1
        while max(width, height) >> (n_levels - 1) > tile:
            n_levels += 1
    if n_levels < 1 or max(width, height) >> (n_levels - 1) < 1:
        raise ValueError(f"n_levels must be between 1 and {max(width, height).bit_length()} "
                         f"for a {width} x {height} slide, got {n_levels}")
    dims = [(max(width >> k, 1), max(height >> k, 1)) for k in range(n_levels)]
    return dims


def _dihedral(tiles: np.ndarray) -> np.ndarray:
    """All 8 flips/rotations of every tile: (B, s, s, 3) -> (8B, s, s, 3)."""
    out = []
    for t in (tiles, tiles.transpose(0, 2, 1, 3)):
        out += [t, t[:, ::-1], t[:, :, ::-1], t[:, ::-1, ::-1]]
    return np.ascontiguousarray(np.stack(out, 1).reshape(-1, *tiles.shape[1:]))


@lru_cache(maxsize=2)
def _bank(seed: int, mpp: float) -> list[np.ndarray]:
    """Bank tiles of every class in all 8 dihedral variants, with 2x block-mean pyramids.

    Index ``(label * _PER_CLASS + j) * 8 + variant``.
    """
    world = SyntheticWorld(seed=seed, size=_CELL, mpp=mpp)
    stain = sample_stain(np.random.default_rng([seed, 7_000_002]))   # one staining per slide
    base, index = [], 1_000_000
    for label in range(len(world.classes)):
        found = 0
        while found < _PER_CLASS:                # bank tiles are all tissue (no glass edge)
            tile = world.tile(index, label=label, stain=stain)
            index += 1
            if tile.tissue is None or tile.tissue.all():
                base.append(tile.image)
                found += 1
    base = np.stack(base)
    banks = [_dihedral(base)]
    for _ in range(_MAX_BANK_LEVEL):
        b = base.astype(np.uint16)
        b = b[:, 0::2, 0::2] + b[:, 1::2, 0::2] + b[:, 0::2, 1::2] + b[:, 1::2, 1::2] + 2
        base = (b >> 2).astype(np.uint8)
        banks.append(_dihedral(base))
    for b in banks:
        b.setflags(write=False)                  # cached: shared between calls
    return banks


def _layout(width: int, height: int, seed: int, mpp: float, tissue: bool) -> _Layout:
    rng = np.random.default_rng([seed, 7_000_001])
    gh, gw = -(-height // _GRID) + 1, -(-width // _GRID) + 1
    ch, cw = -(-height // _CELL), -(-width // _CELL)
    n_classes = len(SyntheticWorld.classes)
    label = np.zeros((gh, gw), np.int64)
    alpha = np.zeros((gh, gw), np.float32)
    if tissue:
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        wobble = smooth_noise(rng, (gh, gw), max(min(gh, gw) / 12, 1.0))
        best = np.full((gh, gw), np.inf, np.float32)
        for i in range(int(rng.integers(2, 6))):
            cy, cx = rng.uniform(0.2, 0.8) * gh, rng.uniform(0.2, 0.8) * gw
            ry, rx = rng.uniform(0.12, 0.3) * gh + 1, rng.uniform(0.12, 0.3) * gw + 1
            t = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            u, v = dx * np.cos(t) + dy * np.sin(t), dy * np.cos(t) - dx * np.sin(t)
            dist = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) + 0.25 * wobble
            closer = dist < best
            label[closer] = i % n_classes if i < n_classes else rng.integers(n_classes)
            best = np.minimum(best, dist)
        alpha = np.clip((1.0 - best) * 20.0, 0.0, 1.0).astype(np.float32)
    cy = np.minimum(((np.arange(ch) + 0.5) * _CELL / _GRID).astype(int), gh - 1)
    cx = np.minimum(((np.arange(cw) + 0.5) * _CELL / _GRID).astype(int), gw - 1)
    per = _PER_CLASS * 8
    cells = label[cy][:, cx] * per + rng.integers(0, per, (ch, cw))
    banks = _bank(seed, mpp) if tissue else []
    return _Layout(alpha=alpha, cells=cells, banks=banks)


def _interp_weights(start: float, step: float, n: int, size: int) -> tuple[int, np.ndarray]:
    """Linear interpolation weights (n, m) of n samples at lattice positions start + i*step."""
    pos = np.clip(start + step * np.arange(n), 0, size - 1)
    lo = int(np.floor(pos[0]))
    hi = min(int(np.floor(pos[-1])) + 2, size)
    w = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(lo, hi)[None, :]))
    return lo, w.astype(np.float32)


def _compose(lay: _Layout, kb: int, y0: int, x0: int, n: int) -> np.ndarray:
    """Bank pixels of the n x n square at (y0, x0) in level-``kb`` pixels: whole bank tiles
    are gathered for the aligned cell block that covers it, then cropped."""
    side = _CELL >> kb
    r0, c0 = y0 // side, x0 // side
    r1, c1 = -(-(y0 + n) // side), -(-(x0 + n) // side)
    rows = np.minimum(np.arange(r0, r1), lay.cells.shape[0] - 1)
    cols = np.minimum(np.arange(c0, c1), lay.cells.shape[1] - 1)
    block = lay.banks[kb][lay.cells[rows][:, cols]]          # (mr, mc, side, side, 3)
    mr, mc = block.shape[:2]
    block = block.transpose(0, 2, 1, 3, 4).reshape(mr * side, mc * side, 3)
    dy, dx = y0 - r0 * side, x0 - c0 * side
    return block[dy:dy + n, dx:dx + n]


def _tiles(lay: _Layout, level: int, dims: tuple[int, int], tile: int) -> Iterator[np.ndarray]:
    """Tiles of one pyramid level in row-major order, each (tile, tile, 3) uint8."""
    width, height = dims
    scale = 1 << level                                   # level-0 pixels per level pixel
    glass = np.empty((tile, tile, 3), np.uint8)
    glass[:] = GLASS
    kb = min(level, _MAX_BANK_LEVEL)
    fold = 1 << (level - kb)                             # composed pixels per output pixel
    gh, gw = lay.alpha.shape
    step = scale / _GRID
    col_weights = [_interp_weights((tx * tile * scale + scale / 2) / _GRID, step, tile, gw)
                   for tx in range(-(-width // tile))]
    for ty in range(-(-height // tile)):
        ly, wy = _interp_weights((ty * tile * scale + scale / 2) / _GRID, step, tile, gh)
        strip = lay.alpha[ly:ly + wy.shape[1]]
        for tx, (lx, wx) in enumerate(col_weights):
            window = strip[:, lx:lx + wx.shape[1]]
            if window.max() <= 0.0:
                yield glass
                continue
            img = _compose(lay, kb, ty * tile * fold, tx * tile * fold, tile * fold)
            if fold > 1:
                img = img.reshape(tile, fold, tile, fold, 3).mean((1, 3))
            if window.min() >= 1.0:
                yield img.astype(np.uint8)
                continue
            a = (wy @ window @ wx.T)[..., None]
            out = glass + a * (img.astype(np.float32) - glass)
            yield (out + 0.5).astype(np.uint8)


def write_synthetic_slide(path: str | os.PathLike, width: int, height: int,
                          mpp: float | None = 0.5, seed: int = 0, tile_size: int = 256,
                          n_levels: int | None = None, compression: str | None = "jpeg",
                          tissue: bool = True, quality: int = 90) -> Path:
    """Write a pyramidal tiled TIFF of synthetic tissue islands on glass; return its path.

    Args:
        path: output file (written atomically).
        width, height: level-0 size in pixels.
        mpp: microns per pixel written as TIFF resolution (OpenSlide's ``openslide.mpp-x``);
            ``None`` writes no physical resolution (tissue is then drawn at 0.5 um/px).
        seed: content seed.
        tile_size: TIFF tile side (multiple of 16).
        n_levels: pyramid levels (each half the previous); default until the smallest level
            fits in one tile.
        compression: "jpeg", "zlib", "lzw", ... (tifffile names) or None / "none".
        tissue: False writes an empty slide (all glass).
        quality: JPEG quality.
    """
    import tifffile

    width, height, tile_size = int(width), int(height), int(tile_size)
    if width < 1 or height < 1:
        raise ValueError(f"slide size must be positive, got {width} x {height}")
    if tile_size < 16 or tile_size % 16:
        raise ValueError(f"tile_size must be a positive multiple of 16, got {tile_size}")
    if mpp is not None and mpp <= 0:
        raise ValueError(f"mpp must be positive or None, got {mpp}")
    dims = _level_dims(width, height, tile_size, n_levels)
    lay = _layout(width, height, int(seed), 0.5 if mpp is None else float(mpp), tissue)
    if compression in (None, "none", "raw"):
        compression, cargs = None, None
    elif compression == "jpeg":
        cargs = {"level": int(quality)}
    else:
        cargs = None
    bigtiff = width * height * 3 * 4 // 3 > 2 ** 31 - 2 ** 27
    path = Path(path)
    with (atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tif,
          _single_thread_blas()):
        for level, (w, h) in enumerate(dims):
            extra = {}
            if mpp is not None:
                ppcm = 1e4 / (mpp * (width / w))
                extra = {"resolution": (ppcm, 1e4 / (mpp * (height / h))),
                         "resolutionunit": "CENTIMETER"}
            tif.write(_tiles(lay, level, (w, h), tile_size), shape=(h, w, 3), dtype=np.uint8,
                      tile=(tile_size, tile_size), photometric="rgb", compression=compression,
                      compressionargs=cargs, subfiletype=1 if level else 0, metadata=None,
                      description=(f"rckd synthetic slide seed={seed} mpp={mpp}"
                                   if level == 0 else None), **extra)
    log.info("wrote %s: %d x %d, %d levels, mpp %s", path, width, height, len(dims), mpp)
    return path
