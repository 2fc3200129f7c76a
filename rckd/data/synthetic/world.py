"""The synthetic H&E world: procedurally generated tiles with exact masks and class labels.

``SyntheticWorld(seed, size, mpp).tile(index)`` is a pure function of ``(seed, index)``: it
draws every random number from ``numpy.random.default_rng([seed, index, label])`` (the label
defaults to ``index % 4``). All lengths are
in microns and converted with ``mpp``, so a tile at 0.25 um/px shows the same tissue scale as
one at 0.5 um/px with twice the pixels per micron.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .classes import CLASSES
from .fields import fibres, smooth_noise
from .shapes import paint_nuclei
from .stain import Stain, render_rgb, sample_stain
from .tissue import (Canvas, cut_glass, draw_blood, draw_glands, draw_nests, draw_stroma_cells,
                     glass_edge)

__all__ = ["SyntheticTile", "SyntheticWorld"]


@dataclass(frozen=True)
class SyntheticTile:
    """One generated tile: RGB image, nuclei instance ids (0 = background), gland mask, label."""

    image: np.ndarray     # (H, W, 3) uint8
    nuclei: np.ndarray    # (H, W) int32, ids 1..N contiguous
    glands: np.ndarray    # (H, W) uint8, 1 inside glands (epithelium + lumen)
    label: int
    tissue: np.ndarray | None = None   # (H, W) uint8, 0 on empty glass at a tissue edge


def _compose(cv: Canvas, fib: np.ndarray, inst: np.ndarray, radius: np.ndarray,
             stain: np.ndarray, texture: np.ndarray, noise: "_NoiseBank"
             ) -> tuple[np.ndarray, np.ndarray]:
    """Hematoxylin and eosin concentration maps of the tile.

    ``stain`` and ``texture`` are per-instance lookup tables (index 0: background).
    """
    rng, shape = cv.rng, cv.shape
    e = (0.3 + 0.36 * fib) * (1.0 + 0.15 * smooth_noise(rng, shape, 25 * cv.ppu))
    e += 0.03 * noise.crop("fine", rng, shape)
    h = np.full(shape, 0.035, np.float32)
    cyto = (cv.glands & ~cv.lumen) | cv.nest
    e[cyto] = 0.3 + 0.04 * noise.crop("white", rng, shape)[cyto]
    h[cyto] = 0.16
    secretion = np.clip(smooth_noise(rng, shape, 8 * cv.ppu), 0, None) * rng.uniform(0, 0.06)
    e[cv.lumen] = 0.01 + secretion[cv.lumen]
    h[cv.lumen] = 0.0
    rbc = cv.rbc >= 0
    if rbc.any():
        e[rbc] = rng.uniform(0.9, 1.2) * (0.7 + 0.3 * np.clip(cv.rbc[rbc] / 0.8, 0, 1))
        h[rbc] = 0.02
    e[cv.glass] = 0.0
    h[cv.glass] = 0.0
    nuc = inst > 0
    if nuc.any():
        ids = inst[nuc]
        chrom = noise.crop("fine", rng, shape)[nuc]
        rim = np.clip((radius[nuc] - 0.7) / 0.3, 0, 1)
        t = texture[ids]
        profile = (1.0 - 0.45 * t) + (0.3 + 0.5 * t) * rim + 0.35 * t * chrom
        h[nuc] = stain[ids] * np.clip(profile, 0.3, None)
        e[nuc] = 0.22
    sigma = 0.3 * cv.ppu
    return (ndimage.gaussian_filter(h, sigma, truncate=2.5),
            ndimage.gaussian_filter(e, sigma, truncate=2.5))


class _NoiseBank:
    """Per-world noise fields (white, and smoothed at ~0.8 um) of twice the tile size; tiles
    take crops at random offsets, which is much cheaper than fresh full-frame noise."""

    def __init__(self, seed: int, shape: tuple[int, int], mpp: float):
        self.key, self.shape, self.mpp = seed, shape, mpp
        self.fields: dict[str, np.ndarray] = {}

    def crop(self, name: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        if not self.fields:
            r = np.random.default_rng([self.key, 9_999_991])
            big = (2 * self.shape[0], 2 * self.shape[1])
            self.fields["white"] = r.standard_normal(big, dtype=np.float32)
            self.fields["fine"] = smooth_noise(r, big, 0.8 / self.mpp)
        field = self.fields[name]
        oy = int(rng.integers(0, field.shape[0] - shape[0] + 1))
        ox = int(rng.integers(0, field.shape[1] - shape[1] + 1))
        return field[oy:oy + shape[0], ox:ox + shape[1]]


def _paint(cv: Canvas) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Paint the canvas's nuclei batches in order: instance map, normalised radius map and
    per-instance lookup tables [hematoxylin, chromatin texture] (index 0: background)."""
    inst = np.zeros(cv.shape, np.int32)
    radius = np.zeros(cv.shape, np.float32)
    h_lut, t_lut = [np.zeros(1, np.float32)], [np.zeros(1, np.float32)]
    for batch in cv.batches:
        kept = paint_nuclei(inst, radius, batch, cv.rng, next_id=sum(map(len, h_lut)))
        h_lut.append(batch.stain[kept].astype(np.float32))
        t_lut.append(batch.texture[kept].astype(np.float32))
    return inst, radius, [np.concatenate(h_lut), np.concatenate(t_lut)]


@lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl controller (a scikit-learn dependency), or None when unavailable."""
    try:
        from threadpoolctl import ThreadpoolController
        return ThreadpoolController()
    except Exception:  # pragma: no cover - threadpoolctl missing or broken
        return None


def _single_thread_blas() -> contextlib.AbstractContextManager:
    """Small matrix products are much slower with multi-threaded BLAS on a busy machine."""
    ctl = _blas_controller()
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")


class SyntheticWorld:
    """Procedural H&E tiles with exact nuclei instances, gland masks and tissue classes.

    Args:
        seed: world seed; ``tile(index)`` depends only on ``(seed, index)``.
        size: tile side in pixels (int) or ``(height, width)``.
        mpp: microns per pixel of the generated tiles.
    """

    classes: tuple[str, ...] = tuple(c.name for c in CLASSES)

    def __init__(self, seed: int = 0, size: int | tuple[int, int] = 256, mpp: float = 0.5):
        if mpp <= 0:
            raise ValueError(f"mpp must be positive, got {mpp}")
        self.seed = int(seed)
        self.shape = (int(size), int(size)) if np.isscalar(size) else tuple(map(int, size))
        if min(self.shape) < 8:
            raise ValueError(f"tile size must be at least 8 pixels, got {size}")
        self.size = self.shape[0]
        self.mpp = float(mpp)
        self._noise = _NoiseBank(self.seed, self.shape, self.mpp)

    def label_of(self, index: int) -> int:
        """The class of tile ``index`` when none is requested (balanced: ``index % n``)."""
        return int(index) % len(CLASSES)

    def tile(self, index: int, label: int | None = None, *, stain: Stain | None = None
             ) -> SyntheticTile:
        """Generate tile ``index`` (of class ``label``, default :meth:`label_of`).

        ``stain`` fixes the staining and illumination (e.g. one per slide) instead of the
        per-tile random draw; everything else is unchanged.
        """
        label = self.label_of(index) if label is None else int(label)
        if not 0 <= label < len(CLASSES):
            raise ValueError(f"label must be in [0, {len(CLASSES)}), got {label}")
        with _single_thread_blas():
            return self._tile(int(index), label, stain)

    def _tile(self, index: int, label: int, stain: Stain | None) -> SyntheticTile:
        spec = CLASSES[label]
        rng = np.random.default_rng([self.seed, index, label])
        cv = Canvas(rng, self.shape, self.mpp)
        drawn = sample_stain(rng)                 # drawn even when fixed: same tissue either way
        stain = drawn if stain is None else stain
        fib, thetas, blend = fibres(rng, self.shape, cv.ppu)
        d_mean = rng.uniform(*spec.nucleus_diameter)
        cv.glass = glass_edge(cv)
        if spec.gland_density > 0:
            draw_glands(cv, spec, d_mean)
        if spec.nest_fraction[1] > 0:
            draw_nests(cv, spec, d_mean)
        draw_stroma_cells(cv, thetas, blend)
        inst, radius, luts = _paint(cv)
        draw_blood(cv, inst)
        if cv.glass.any():
            inst, luts = cut_glass(inst, cv.glass, luts)
            cv.glands &= ~cv.glass
            cv.lumen &= ~cv.glass
        h, e = _compose(cv, fib, inst, radius, luts[0], luts[1], self._noise)
        image = render_rgb(h, e, stain, self._noise.crop("white", rng, self.shape))
        return SyntheticTile(image=image, nuclei=inst, glands=cv.glands.astype(np.uint8),
                             label=label, tissue=(~cv.glass).astype(np.uint8))
