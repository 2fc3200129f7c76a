"""Drawing primitives: nuclei (irregular ellipses, painted in local boxes) and glands.

Everything is expressed in pixels here; :mod:`.world` converts microns to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Nuclei", "paint_nuclei", "Gland", "paint_gland", "ring_points", "grid_points"]


@dataclass
class Nuclei:
    """A batch of nuclei to paint, one row per nucleus (pixels, radians)."""

    y: np.ndarray
    x: np.ndarray
    major: np.ndarray        # semi-major axis
    minor: np.ndarray        # semi-minor axis
    angle: np.ndarray        # orientation of the major axis
    wobble: np.ndarray       # boundary irregularity (relative amplitude of harmonics 2 and 3)
    stain: np.ndarray        # hematoxylin concentration
    texture: np.ndarray      # chromatin texture contrast (0 = smooth, 1 = coarse, vesicular)

    def __len__(self) -> int:
        return len(self.y)


def _local_masks(n: Nuclei, rng: np.random.Generator, half: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Inside masks and normalised radii (N, S, S) of every nucleus in a (2*half+1)^2 box."""
    fy, fx = n.y - np.floor(n.y), n.x - np.floor(n.x)
    off = np.arange(-half, half + 1, dtype=np.float32)
    dy = off[None, :, None] - fy[:, None, None].astype(np.float32)
    dx = off[None, None, :] - fx[:, None, None].astype(np.float32)
    c = np.cos(n.angle).astype(np.float32)[:, None, None]
    s = np.sin(n.angle).astype(np.float32)[:, None, None]
    u = (dx * c + dy * s) / n.major.astype(np.float32)[:, None, None]
    v = (dy * c - dx * s) / n.minor.astype(np.float32)[:, None, None]
    rho = np.sqrt(u * u + v * v) + np.float32(1e-6)
    c1, s1 = u / rho, v / rho                               # cos, sin of the polar angle
    c2, s2 = c1 * c1 - s1 * s1, 2 * c1 * s1
    c3, s3 = c1 * (4 * c1 * c1 - 3), s1 * (3 - 4 * s1 * s1)
    psi = rng.uniform(0, 2 * np.pi, (2, len(n))).astype(np.float32)
    amp = n.wobble.astype(np.float32)
    cos2, sin2 = (amp * np.cos(psi[0]))[:, None, None], (amp * np.sin(psi[0]))[:, None, None]
    amp = 0.6 * amp
    cos3, sin3 = (amp * np.cos(psi[1]))[:, None, None], (amp * np.sin(psi[1]))[:, None, None]
    edge = 1.0 + cos2 * c2 - sin2 * s2 + cos3 * c3 - sin3 * s3
    r = rho / edge
    return r <= 1.0, r


def paint_nuclei(inst: np.ndarray, radius: np.ndarray, nuclei: Nuclei, rng: np.random.Generator,
                 next_id: int, max_overlap: float = 0.3, min_pixels: int = 3) -> list[int]:
    """Paint ``nuclei`` into the instance map ``inst`` (in place) in order.

    A nucleus only takes background pixels; it is dropped when more than ``max_overlap`` of it
    is covered by nuclei already painted, or fewer than ``min_pixels`` remain visible.
    ``radius`` receives each painted pixel's normalised radius (0 centre, 1 boundary).
    Returns the indices (into ``nuclei``) of the painted nuclei; the k-th gets id
    ``next_id + k``.
    """
    if len(nuclei) == 0:
        return []
    half = int(np.ceil(float(np.max(nuclei.major * (1 + 1.6 * nuclei.wobble))))) + 1
    inside, r = _local_masks(nuclei, rng, half)
    height, width = inst.shape
    iy, ix = np.floor(nuclei.y).astype(int), np.floor(nuclei.x).astype(int)
    kept: list[int] = []
    for k in range(len(nuclei)):
        y0, x0 = iy[k] - half, ix[k] - half
        y1, x1 = y0 + 2 * half + 1, x0 + 2 * half + 1
        cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)
        if cy0 >= cy1 or cx0 >= cx1:
            continue
        m = inside[k, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        area = int(m.sum())
        if area < min_pixels:
            continue
        win = inst[cy0:cy1, cx0:cx1]
        free = m & (win == 0)
        visible = int(free.sum())
        if visible < min_pixels or visible < (1.0 - max_overlap) * area:
            continue
        win[free] = next_id + len(kept)
        radius[cy0:cy1, cx0:cx1][free] = r[k, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0][free]
        kept.append(k)
    return kept


@dataclass
class Gland:
    """A gland in pixels: centre, mean outer radius, axis ratio, orientation, boundary
    harmonics (amplitudes and phases) and epithelium thickness."""

    y: float
    x: float
    radius: float
    aspect: float
    angle: float
    harm_amp: np.ndarray
    harm_phase: np.ndarray
    epithelium: float

    def boundary(self, phi: np.ndarray) -> np.ndarray:
        """Outer radius (in the gland's normalised frame) at polar angle ``phi``."""
        k = np.arange(2, 2 + len(self.harm_amp))
        wave = (self.harm_amp[None, :] * np.cos(k[None, :] * phi[..., None]
                                                + self.harm_phase[None, :])).sum(-1)
        return self.radius * (1.0 + wave)

    def to_image(self, rho: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates (y, x) of gland-frame polar points."""
        u, v = rho * np.cos(phi), rho * np.sin(phi) * self.aspect
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.y + u * s + v * c, self.x + u * c - v * s

    def extent(self) -> float:
        return float(self.radius * (1.0 + np.abs(self.harm_amp).sum()) + 2)


def paint_gland(gland: Gland, glands: np.ndarray, lumen: np.ndarray) -> None:
    """Set the gland's pixels in ``glands`` and its lumen's pixels in ``lumen`` (in place)."""
    h, w = glands.shape
    ext = gland.extent()
    y0, y1 = max(int(gland.y - ext), 0), min(int(gland.y + ext) + 2, h)
    x0, x1 = max(int(gland.x - ext), 0), min(int(gland.x + ext) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - gland.y
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - gland.x
    c, s = np.cos(gland.angle), np.sin(gland.angle)
    u = xx * c + yy * s
    v = (yy * c - xx * s) / gland.aspect
    rho = np.sqrt(u * u + v * v)
    edge = gland.boundary(np.arctan2(v, u))
    glands[y0:y1, x0:x1] |= rho <= edge
    lumen[y0:y1, x0:x1] |= rho <= edge - gland.epithelium


def ring_points(gland: Gland, depth: float, spacing: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points along the gland boundary, ``depth`` pixels inside it, about ``spacing`` apart.

    Returns (y, x, radial direction angle in image coordinates).
    """
    mean_r = max(gland.radius - depth, 1.0)
    perimeter = np.pi * mean_r * (1.0 + gland.aspect) * 1.05
    count = max(int(perimeter / spacing), 3)
    phi = (np.arange(count) + rng.uniform(-0.2, 0.2, count)) * (2 * np.pi / count)
    phi += rng.uniform(0, 2 * np.pi)
    rho = np.maximum(gland.boundary(phi) - depth, 0.5)
    y, x = gland.to_image(rho, phi)
    y_out, x_out = gland.to_image(rho + 1.0, phi)
    return y, x, np.arctan2(y_out - y, x_out - x)


def grid_points(rng: np.random.Generator, shape: tuple[int, int], spacing: float,
                jitter: float = 0.35, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Jittered hexagonal lattice of points covering ``shape`` (plus ``margin``), random offset."""
    spacing = max(spacing, 1.0)
    row_h = spacing * np.sqrt(3) / 2
    rows = np.arange(-margin + rng.uniform(0, row_h), shape[0] + margin, row_h)
    cols = np.arange(-margin + rng.uniform(0, spacing), shape[1] + margin, spacing)
    y = np.repeat(rows, len(cols))
    x = np.tile(cols, len(rows)) + np.repeat((np.arange(len(rows)) % 2) * spacing / 2, len(cols))
    y = y + rng.normal(0, jitter * spacing, y.shape)
    x = x + rng.normal(0, jitter * spacing, x.shape)
    return y, x
