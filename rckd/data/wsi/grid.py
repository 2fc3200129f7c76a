"""Pure grid geometry by microns per pixel: which level to read, tile footprints, coordinates.

Nothing here touches a file. A tile of ``patch_size`` pixels at ``target_mpp`` covers
``patch_size * target_mpp / level0_mpp`` level-0 pixels (rounded to an integer footprint); tiles
step by ``(patch_size - overlap)`` target pixels; only tiles wholly inside the slide are kept, and a
tile that ends exactly on the slide edge is inside (no off-by-one). Pixels are read from the
coarsest pyramid level that is still at least as fine as the target, then resized.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["GridGeometry", "best_level", "plan_geometry", "grid_coords", "tissue_fraction", "select_tiles"]


@dataclasses.dataclass(frozen=True)
class GridGeometry:
    """How one tile set relates to one slide's pyramid (all sizes in pixels)."""

    level0_mpp: float
    target_mpp: float
    patch_size: int           # output tile side, at target_mpp
    overlap: int              # output pixels shared by neighbours
    patch_size_level0: int    # footprint side in level-0 pixels
    stride_level0: float      # step between tiles in level-0 pixels (rounded per coordinate)
    read_level: int           # pyramid level pixels are read from
    read_downsample: float    # that level's downsample
    read_size: int            # footprint side at the read level (resized to patch_size)

    @property
    def read_mpp(self) -> float:
        """Microns per pixel of the read level."""
        return self.level0_mpp * self.read_downsample


def best_level(downsample: float, level_downsamples: tuple[float, ...], tolerance: float = 0.01) -> int:
    """The coarsest level whose downsample is at most ``downsample * (1 + tolerance)`` (else 0)."""
    level = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= downsample * (1 + tolerance):
            level = i
    return level


def plan_geometry(level0_mpp: float, target_mpp: float, patch_size: int, overlap: int = 0,
                  level_downsamples: tuple[float, ...] = (1.0,), tolerance: float = 0.01) -> GridGeometry:
    """Choose the read level and footprint sizes for tiles of ``patch_size`` px at ``target_mpp``.

    The read level is the coarsest whose mpp is at most ``target_mpp * (1 + tolerance)`` (so
    pixels are downsampled, not invented); when the target is finer than level 0, level 0 is
    read and upsampled.
    """
    if level0_mpp <= 0 or target_mpp <= 0:
        raise ValueError(f"mpp must be positive (level-0 {level0_mpp}, target {target_mpp})")
    if patch_size < 1 or not 0 <= overlap < patch_size:
        raise ValueError(f"need patch_size >= 1 and 0 <= overlap < patch_size "
                         f"(got {patch_size}, {overlap})")
    scale = target_mpp / level0_mpp
    level = best_level(scale, level_downsamples, tolerance)
    ds = float(level_downsamples[level])
    size0 = max(1, int(round(patch_size * scale)))
    read_size = max(1, int(round(size0 / ds)))  # from the level-0 footprint, as TRIDENT's reader does
    return GridGeometry(level0_mpp=float(level0_mpp), target_mpp=float(target_mpp),
                        patch_size=int(patch_size), overlap=int(overlap), patch_size_level0=size0,
                        stride_level0=(patch_size - overlap) * scale, read_level=level,
                        read_downsample=ds, read_size=read_size)


def _axis(length: int, size: int, stride: float) -> np.ndarray:
    if length < size:
        return np.zeros(0, np.int64)
    n = int(math.floor((length - size) / stride + 1e-9)) + 1
    pos = np.round(np.arange(n) * stride).astype(np.int64)
    return pos[pos + size <= length]


def grid_coords(width: int, height: int, geom: GridGeometry) -> np.ndarray:
    """All level-0 top-left (x, y) of tiles wholly inside a ``width`` x ``height`` slide.

    Row-major order (y, then x), shape (N, 2), int64.
    """
    xs = _axis(int(width), geom.patch_size_level0, geom.stride_level0)
    ys = _axis(int(height), geom.patch_size_level0, geom.stride_level0)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int64)


def _sat_at(sat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup in a summed-area table: exact for a piecewise-constant mask."""
    h, w = sat.shape[0] - 1, sat.shape[1] - 1
    x = np.clip(x, 0, w)
    y = np.clip(y, 0, h)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 1) if w > 0 else np.zeros_like(x, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 1) if h > 0 else np.zeros_like(y, np.int64)
    fx, fy = x - x0, y - y0
    a = sat[y0, x0]
    b = sat[y0, x0 + 1]
    c = sat[y0 + 1, x0]
    d = sat[y0 + 1, x0 + 1]
    return a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy


def tissue_fraction(mask: np.ndarray, slide_size: tuple[int, int], coords: np.ndarray,
                    size_level0: int) -> np.ndarray:
    """Fraction of each tile's footprint inside ``mask`` (vectorised, via a summed-area table).

    ``mask`` (h, w) covers the whole ``slide_size`` (level-0 width, height); the footprint of a
    tile at level-0 (x, y) is the square of side ``size_level0``. Partial mask pixels count by
    area, so the result does not depend on how the footprint falls on the mask grid.
    """
    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(coords) == 0:
        return np.zeros(0, np.float64)
    h, w = mask.shape
    sx, sy = slide_size[0] / w, slide_size[1] / h
    sat = np.zeros((h + 1, w + 1), np.float64)
    sat[1:, 1:] = np.cumsum(np.cumsum(mask.astype(np.float64), axis=0), axis=1)
    x0, y0 = coords[:, 0] / sx, coords[:, 1] / sy
    x1, y1 = (coords[:, 0] + size_level0) / sx, (coords[:, 1] + size_level0) / sy
    total = _sat_at(sat, x1, y1) - _sat_at(sat, x0, y1) - _sat_at(sat, x1, y0) + _sat_at(sat, x0, y0)
    area = (x1 - x0) * (y1 - y0)
    return np.clip(total / np.maximum(area, 1e-12), 0.0, 1.0)


def select_tiles(coords: np.ndarray, fractions: np.ndarray, min_tissue: float) -> np.ndarray:
    """Coordinates whose tissue fraction is at least ``min_tissue`` (0 keeps tiles touching tissue)."""
    keep = fractions > 0 if min_tissue <= 0 else fractions >= min_tissue - 1e-9
    return np.asarray(coords, np.int64)[keep]
