"""Drawing the tissue of one synthetic tile: glands, tumour nests, stromal cells, red blood
cells and glass at tissue edges, on a :class:`Canvas` of masks and nuclei batches.

Every function draws from the canvas's random generator in a fixed order, so a tile is a pure
function of its seed. Lengths are in microns (converted with ``Canvas.ppu``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .classes import ClassSpec
from .fields import smooth_noise
from .shapes import Gland, Nuclei, grid_points, paint_gland, paint_nuclei, ring_points

__all__ = ["Canvas", "draw_glands", "draw_nests", "draw_stroma_cells", "draw_blood",
           "glass_edge", "cut_glass"]


class Canvas:
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


def place_glands(cv: Canvas, spec: ClassSpec) -> list[Gland]:
    """At least one, about ``gland_density`` per area, non-overlapping glands (rejection
    sampling); centres may lie a little off the tile so glands are cut by its border."""
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


def draw_glands(cv: Canvas, spec: ClassSpec, d_mean: float) -> None:
    """Glands with epithelial nuclei along the basement membrane (and filling, if in situ)."""
    rng = cv.rng
    core = np.zeros(cv.shape, bool)
    for g in place_glands(cv, spec):
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


def draw_nests(cv: Canvas, spec: ClassSpec, d_mean: float) -> None:
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


def draw_stroma_cells(cv: Canvas, thetas: np.ndarray, blend: np.ndarray) -> None:
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


def draw_blood(cv: Canvas, inst: np.ndarray) -> None:
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


def glass_edge(cv: Canvas, probability: float = 0.15) -> np.ndarray:
    """Empty glass beyond a wavy tissue edge on some tiles (class independent)."""
    rng, shape = cv.rng, cv.shape
    if rng.random() >= probability:
        return np.zeros(shape, bool)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dist = (xx - shape[1] / 2) * np.cos(theta) + (yy - shape[0] / 2) * np.sin(theta)
    dist += 8 * cv.ppu * smooth_noise(rng, shape, 20 * cv.ppu)
    return dist > np.quantile(dist[::4, ::4], 1.0 - rng.uniform(0.1, 0.35))


def cut_glass(inst: np.ndarray, glass: np.ndarray, luts: list[np.ndarray], min_pixels: int = 3
         ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Remove glass pixels from the instance map and renumber instances 1..N (luts follow)."""
    inst[glass] = 0
    present = np.bincount(inst.ravel(), minlength=len(luts[0])) >= min_pixels
    present[0] = True
    new_id = (np.cumsum(present) - 1).astype(np.int32)
    new_id[~present] = 0
    return new_id[inst], [lut[present] for lut in luts]
