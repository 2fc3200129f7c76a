"""Beer-Lambert colour model of H&E staining.

A stained section is described by per-pixel stain concentrations (hematoxylin ``h`` and eosin
``e``, in optical-density units, natural log). The transmitted light is
``I = I0 * exp(-(h * v_H + e * v_E))`` per RGB channel, with unit stain vectors ``v_H`` and
``v_E``. This is the forward model that colour deconvolution (Ruifrok & Johnston,
``skimage.color.rgb2hed``) inverts, so deconvolution recovers hematoxylin on the nuclei.

Stain vectors, stain strengths and illumination are randomised per tile by :func:`sample_stain`,
independently of the tissue class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HEMATOXYLIN", "EOSIN", "Stain", "sample_stain", "render_rgb"]

#: Hematoxylin OD vector (as in ``skimage.color.rgb_from_hed``).
HEMATOXYLIN = np.array([0.65, 0.70, 0.29])
#: Eosin OD vector of typical stroma (Macenko-style estimate; redder than skimage's).
EOSIN = np.array([0.2159, 0.8012, 0.5581])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Stain:
    """One tile's staining and imaging conditions."""

    v_h: np.ndarray       # unit hematoxylin OD vector (3,)
    v_e: np.ndarray       # unit eosin OD vector (3,)
    h_gain: float         # multiplies every hematoxylin concentration
    e_gain: float         # multiplies every eosin concentration
    white: np.ndarray     # illumination / glass colour in [0, 1] (3,)
    noise: float          # sensor noise standard deviation (8-bit levels)


def sample_stain(rng: np.random.Generator) -> Stain:
    """Draw per-tile stain vectors, strengths and illumination (class independent)."""
    v_h = _unit(np.clip(HEMATOXYLIN + rng.normal(0.0, 0.04, 3), 0.05, None))
    v_e = _unit(np.clip(EOSIN + rng.normal(0.0, 0.05, 3), 0.05, None))
    white = np.clip(rng.uniform(0.93, 0.99) + rng.normal(0.0, 0.01, 3), 0.85, 1.0)
    return Stain(v_h=v_h, v_e=v_e, h_gain=float(rng.uniform(0.75, 1.25)),
                 e_gain=float(rng.uniform(0.7, 1.3)), white=white,
                 noise=float(rng.uniform(1.0, 3.0)))


def render_rgb(h: np.ndarray, e: np.ndarray, stain: Stain,
               noise: np.ndarray | None = None) -> np.ndarray:
    """Turn concentration maps (H, W) into a uint8 RGB image (H, W, 3) by Beer-Lambert.

    ``noise`` (H, W), unit variance, is scaled by ``stain.noise`` and added to every channel.
    """
    od = (h * np.float32(stain.h_gain))[..., None] * stain.v_h.astype(np.float32)
    od += (e * np.float32(stain.e_gain))[..., None] * stain.v_e.astype(np.float32)
    rgb = np.exp(-od, out=od)
    rgb *= (255.0 * stain.white).astype(np.float32)
    rgb += 0.5
    if noise is not None and stain.noise > 0:
        rgb += (noise * np.float32(stain.noise))[..., None]
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)
