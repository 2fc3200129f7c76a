"""Smooth random fields (textures) built from small matrix products.

``smooth_noise`` draws white noise on a coarse lattice and interpolates it with Gaussian
weights, ``W_y @ lattice @ W_x.T``: a band-limited field with a chosen correlation length, at a
cost of two small matrix products whatever the length scale.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["smooth_noise", "fibres"]


@lru_cache(maxsize=64)
def _interp_matrix(n: int, scale: float) -> np.ndarray:
    """(n, m) Gaussian interpolation weights from a lattice of spacing ``scale`` pixels."""
    m = int(np.ceil(n / scale)) + 3
    pos = (np.arange(n) + 0.5) / scale + 1.0          # pixel centres in lattice units
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(m)[None, :]) / 0.6) ** 2)
    w /= np.sqrt((w * w).sum(axis=1, keepdims=True))  # unit variance at every pixel
    w.setflags(write=False)
    return w.astype(np.float32)


@lru_cache(maxsize=8)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    yy = np.arange(shape[0], dtype=np.float32)[:, None]
    xx = np.arange(shape[1], dtype=np.float32)[None, :]
    return yy, xx


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean random field of ``shape`` with correlation length ``scale`` pixels (std ~1)."""
    scale = max(float(scale), 0.5)
    scale = float(np.round(scale, 2))                 # bounded cache of matrices
    wy = _interp_matrix(shape[0], scale)
    wx = _interp_matrix(shape[1], scale)
    lattice = rng.standard_normal((wy.shape[1], wx.shape[1]), dtype=np.float32)
    return wy @ lattice @ wx.T


def fibres(rng: np.random.Generator, shape: tuple[int, int], px_per_um: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wavy collagen fibre texture in [0, 1]: two bundles of sinusoidal fibres with random
    orientations, bent by a smooth phase field and blended by a smooth mask.

    Returns (texture, the two bundle orientations across the fibres, blend weight of bundle 0).
    """
    yy, xx = _grid(shape)
    out = np.zeros(shape, np.float32)
    blend = 1.0 / (1.0 + np.exp(-2.0 * smooth_noise(rng, shape, 40 * px_per_um)))
    thetas = rng.uniform(0, np.pi, 2)
    for weight, theta in zip((blend, 1.0 - blend), thetas):
        period = rng.uniform(3.0, 6.0) * px_per_um
        bend = smooth_noise(rng, shape, 12 * px_per_um) * rng.uniform(2.0, 4.0)
        bend += smooth_noise(rng, shape, 3 * px_per_um) * 0.8
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) * (2 * np.pi / period) + bend
        wave = 0.5 + 0.5 * np.sin(phase)
        out += weight * wave * wave
    breaks = smooth_noise(rng, shape, 4 * px_per_um)
    return np.clip(out * (0.65 + 0.35 * breaks), 0.0, 1.0), thetas, blend
