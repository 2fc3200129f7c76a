"""The synthetic H&E world: procedurally generated tiles with exact masks and class labels.

``SyntheticWorld(seed, size, mpp).tile(index)`` is a pure function of ``(seed, index)``: it
draws every random number from ``numpy.random.default_rng([seed, index])``. All lengths are
in microns and converted with ``mpp``, so a tile at 0.25 um/px shows the same tissue scale as
one at 0.5 um/px with twice the pixels per micron.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .classes import CLASSES, ClassSpec
from .fields import fibres, smooth_noise
from .shapes import Gland, Nuclei, grid_points, paint_gland, paint_nuclei, ring_points
from .stain import Stain, render_rgb, sample_stain

__all__ = ["SyntheticTile", "SyntheticWorld"]


@dataclass(frozen=True)
class SyntheticTile:
    """One generated tile: RGB image, nuclei instance ids (0 = background), gland mask, label."""

    image: np.ndarray     # (H, W, 3) uint8
    nuclei: np.ndarray    # (H, W) int32, ids 1..N contiguous
    glands: np.ndarray    # (H, W) uint8, 1 inside glands (epithelium + lumen)
    label: int
    tissue: np.ndarray | None = None   # (H, W) uint8, 0 on empty glass at a tissue edge


class _Canvas:
    """Scratch state of one tile being drawn."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], mpp: float):
        self.rng, self.shape, self.mpp = rng, shape, mpp
        self.ppu = 1.0 / mpp                                   # pixels per micron
        self.area = shape[0] * shape[1] * mpp * mpp / 1e4      # tile area in 10^4 um^2
        self.glands = np.zeros(shape, bool)
        self.lumen = np.zeros(shape, bool)
        self.nest = np.zeros(shape, bool)
        self.glass = np.zeros(shape, bool)
        self.rbc = np.full(shape, -1.0, np.float32)           # red cell radius, -1 outside
        self.batches: list[Nuclei] = []

    def inside(self, y: np.ndarray, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Which points fall on True pixels of ``mask`` (points off the tile: False)."""
        yi, xi = np.floor(y).astype(int), np.floor(x).astype(int)
        ok = (yi >= 0) & (yi < self.shape[0]) & (xi >= 0) & (xi < self.shape[1])
        out = np.zeros(len(y), bool)
        out[ok] = mask[yi[ok], xi[ok]]
        return out

    def nuclei(self, y, x, diameter, aspect, wobble, stain, texture, angle=None,
               pleomorphism=0.0) -> Nuclei:
        """A batch of nuclei at (y, x) with sizes in microns and per-nucleus variation."""
        rng, n = self.rng, len(y)
        d = diameter * np.exp(rng.normal(0, pleomorphism, n)) * self.ppu
        asp = rng.uniform(*aspect, n)
        if angle is None:
            angle = rng.uniform(0, np.pi, n)
        return Nuclei(y=np.asarray(y, float), x=np.asarray(x, float),
                      major=d / 2 * np.sqrt(asp), minor=d / 2 / np.sqrt(asp),
                      angle=np.asarray(angle, float) + rng.normal(0, 0.2, n),
                      wobble=rng.uniform(*wobble, n),
                      stain=rng.uniform(*stain, n) * np.exp(rng.normal(0, 0.06, n)),
                      texture=rng.uniform(*texture, n))


def _place_glands(cv: _Canvas, spec: ClassSpec) -> list[Gland]:
    rng, glands = cv.rng, []
    count = max(1, rng.poisson(spec.gland_density * cv.area * 1.3))
    for _ in range(count * 8):
        if len(glands) == count:
            break
        r = rng.uniform(*spec.gland_radius) * cv.ppu
        y = rng.uniform(-0.3 * r, cv.shape[0] + 0.3 * r)
        x = rng.uniform(-0.3 * r, cv.shape[1] + 0.3 * r)
        g = Gland(y=y, x=x, radius=r, aspect=rng.uniform(*spec.gland_aspect),
                  angle=rng.uniform(0, np.pi),
                  harm_amp=rng.uniform(0, spec.gland_wobble, 3),
                  harm_phase=rng.uniform(0, 2 * np.pi, 3),
                  epithelium=rng.uniform(*spec.epithelium) * cv.ppu)
        gap = 5 * cv.ppu
        if all(np.hypot(g.y - o.y, g.x - o.x) > g.extent() + o.extent() + gap for o in glands):
            glands.append(g)
    return glands


def _draw_glands(cv: _Canvas, spec: ClassSpec, d_mean: float) -> None:
    """Glands with epithelial nuclei along the basement membrane (and filling, if in situ)."""
    rng = cv.rng
    core = np.zeros(cv.shape, bool)
    for g in _place_glands(cv, spec):
        layers = int(rng.integers(spec.layers[0], spec.layers[1] + 1))
        major = d_mean / 2 * 1.15 * cv.ppu
        g.epithelium = max(g.epithelium, layers * 2.1 * major + 2 * cv.ppu)
        if spec.filled:
            paint_gland(g, cv.glands, core)
        else:
            paint_gland(g, cv.glands, cv.lumen)
        for layer in range(layers):
            depth = major + 0.5 * cv.ppu + layer * 1.9 * major
            y, x, radial = ring_points(g, depth, d_mean * cv.ppu * spec.spacing / 1.1, rng)
            cv.batches.append(cv.nuclei(y, x, d_mean, spec.nucleus_aspect,
                                        spec.nucleus_wobble, spec.hyperchromasia,
                                        spec.texture, radial, spec.pleomorphism))
    if spec.filled and core.any():
        holes = smooth_noise(rng, cv.shape, 6 * cv.ppu) > rng.uniform(1.1, 1.6)
        cv.lumen |= core & holes
        y, x = grid_points(rng, cv.shape, d_mean * cv.ppu * spec.spacing, 0.18)
        keep = cv.inside(y, x, core & ~ndimage.binary_dilation(holes, iterations=2))
        cv.batches.append(cv.nuclei(y[keep], x[keep], d_mean, spec.nucleus_aspect,
                                    spec.nucleus_wobble, spec.hyperchromasia, spec.texture,
                                    None, spec.pleomorphism))


def _draw_nests(cv: _Canvas, spec: ClassSpec, d_mean: float) -> None:
    """Invasive carcinoma: irregular nests and cords of tumour cells, plus single cells."""
    rng = cv.rng
    field = smooth_noise(rng, cv.shape, rng.uniform(10, 18) * cv.ppu)
    frac = rng.uniform(*spec.nest_fraction)
    cv.nest = field > np.quantile(field[::4, ::4], 1.0 - frac)
    y, x = grid_points(rng, cv.shape, d_mean * cv.ppu * spec.spacing, 0.25)
    in_nest = cv.inside(y, x, cv.nest)
    single = ~in_nest & (rng.random(len(y)) < 0.04)
    keep = (in_nest & (rng.random(len(y)) < 0.9)) | single
    cv.batches.append(cv.nuclei(y[keep], x[keep], d_mean, spec.nucleus_aspect,
                                spec.nucleus_wobble, spec.hyperchromasia, spec.texture,
                                None, spec.pleomorphism))


def _draw_stroma_cells(cv: _Canvas, thetas: np.ndarray, blend: np.ndarray) -> None:
    """Fibroblasts (spindles along the fibres) and lymphocytes: the same for every class."""
    rng = cv.rng
    stroma = ~(cv.glands | cv.nest)
    n = rng.poisson(rng.uniform(4, 10) * cv.area)
    y, x = rng.uniform(0, cv.shape[0], n), rng.uniform(0, cv.shape[1], n)
    keep = cv.inside(y, x, stroma)
    y, x = y[keep], x[keep]
    first = blend[np.floor(y).astype(int), np.floor(x).astype(int)] > 0.5
    angle = np.where(first, thetas[0], thetas[1]) + np.pi / 2
    cv.batches.append(cv.nuclei(y, x, rng.uniform(6.5, 8.5), (3.0, 5.0), (0.0, 0.05),
                                (1.15, 1.5), (0.0, 0.2), angle, 0.08))
    n = rng.poisson(rng.uniform(0, 14) * cv.area)
    y, x = rng.uniform(0, cv.shape[0], n), rng.uniform(0, cv.shape[1], n)
    keep = cv.inside(y, x, stroma)
    cv.batches.append(cv.nuclei(y[keep], x[keep], 5.6, (1.0, 1.15), (0.0, 0.04),
                                (1.9, 2.3), (0.0, 0.15), None, 0.06))


def _draw_blood(cv: _Canvas, inst: np.ndarray) -> None:
    """Red blood cells in small capillaries of the stroma (class independent): eosin-dense
    discs with central pallor and no hematoxylin. They are not nuclei."""
    rng = cv.rng
    n_vessels = rng.poisson(rng.uniform(0.0, 1.6) * cv.area)
    if n_vessels == 0:
        return
    ys, xs = [], []
    for _ in range(n_vessels):
        count = int(rng.integers(3, 11))
        theta = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, count))
        step = 6.5 * cv.ppu
        y0, x0 = rng.uniform(0, cv.shape[0]), rng.uniform(0, cv.shape[1])
        ys.append(y0 + np.cumsum(np.sin(theta) * step) + rng.normal(0, 1.5 * cv.ppu, count))
        xs.append(x0 + np.cumsum(np.cos(theta) * step) + rng.normal(0, 1.5 * cv.ppu, count))
    y, x = np.concatenate(ys), np.concatenate(xs)
    cells = cv.nuclei(y, x, 7.0, (1.0, 1.3), (0.0, 0.03), (1.0, 1.0), (0.0, 0.0), None, 0.05)
    rbc = np.zeros(cv.shape, np.int32)
    paint_nuclei(rbc, cv.rbc, cells, rng, next_id=1, max_overlap=0.7)
    cv.rbc[(rbc == 0) | (inst > 0) | cv.glands | cv.nest] = -1.0


def _glass_edge(cv: _Canvas, probability: float = 0.15) -> np.ndarray:
    """Empty glass beyond a wavy tissue edge on some tiles (class independent)."""
    rng, shape = cv.rng, cv.shape
    if rng.random() >= probability:
        return np.zeros(shape, bool)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dist = (xx - shape[1] / 2) * np.cos(theta) + (yy - shape[0] / 2) * np.sin(theta)
    dist += 8 * cv.ppu * smooth_noise(rng, shape, 20 * cv.ppu)
    return dist > np.quantile(dist[::4, ::4], 1.0 - rng.uniform(0.1, 0.35))


def _cut(inst: np.ndarray, glass: np.ndarray, luts: list[np.ndarray], min_pixels: int = 3
         ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Remove glass pixels from the instance map and renumber instances 1..N (luts follow)."""
    inst[glass] = 0
    present = np.bincount(inst.ravel(), minlength=len(luts[0])) >= min_pixels
    present[0] = True
    new_id = (np.cumsum(present) - 1).astype(np.int32)
    new_id[~present] = 0
    return new_id[inst], [lut[present] for lut in luts]


def _compose(cv: _Canvas, fib: np.ndarray, inst: np.ndarray, radius: np.ndarray,
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
        e[nuc] = 0.1
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
        cv = _Canvas(rng, self.shape, self.mpp)
        stain_model = sample_stain(rng)
        if stain is not None:
            stain_model = stain
        fib, thetas, blend = fibres(rng, self.shape, cv.ppu)
        d_mean = rng.uniform(*spec.nucleus_diameter)
        cv.glass = _glass_edge(cv)
        if spec.gland_density > 0:
            _draw_glands(cv, spec, d_mean)
        if spec.nest_fraction[1] > 0:
            _draw_nests(cv, spec, d_mean)
        _draw_stroma_cells(cv, thetas, blend)
        inst = np.zeros(self.shape, np.int32)
        radius = np.zeros(self.shape, np.float32)
        stain, texture = [np.zeros(1, np.float32)], [np.zeros(1, np.float32)]
        next_id = 1
        for batch in cv.batches:
            kept = paint_nuclei(inst, radius, batch, rng, next_id=next_id)
            stain.append(batch.stain[kept].astype(np.float32))
            texture.append(batch.texture[kept].astype(np.float32))
            next_id += len(kept)
        _draw_blood(cv, inst)
        luts = [np.concatenate(stain), np.concatenate(texture)]
        if cv.glass.any():
            inst, luts = _cut(inst, cv.glass, luts)
            cv.glands &= ~cv.glass
            cv.lumen &= ~cv.glass
        h, e = _compose(cv, fib, inst, radius, luts[0], luts[1], self._noise)
        image = render_rgb(h, e, stain_model, self._noise.crop("white", rng, self.shape))
        return SyntheticTile(image=image, nuclei=inst, glands=cv.glands.astype(np.uint8),
                             label=label, tissue=(~cv.glass).astype(np.uint8))
