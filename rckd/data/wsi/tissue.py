"""Tissue detection on a bounded thumbnail, for bright-field (H&E, IHC) and dark-field slides.

The thumbnail is read strip by strip from the coarsest level that is still larger than the
bound, so a huge single-level image never has to fit in memory (CLAM #234/#284). The background
colour is estimated on the thumbnail border. A bright border means bright-field glass: stains
absorb some colours more than others, so a pixel's tissue score is the larger of its HSV
saturation and its stain colour, the length of its optical density (relative to the glass) off
the grey axis. That finds pale tissue, like a lightly counterstained IHC slide without DAB, and
ignores what only darkens (dust, shadows, uneven illumination). A dark border means a
dark-field/fluorescence scan, where the distance from the background counts (saturation of dark
noise is meaningless). The score threshold is Otsu's, clipped to ``[min_threshold,
max_threshold]`` so that a blank slide yields no tissue and a slide that is all tissue yields all
tissue. Marker ink (saturated green or blue, or black) is not tissue on bright-field slides (CLAM
#157, histolab #513), and hematoxylin, however dense and blue, is not ink (:func:`_pen_marks`).
Then closing, removal of small regions and filling of small holes, all sized in microns.
Every number used is returned so it can be recorded with the tile set.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from rckd.data.wsi.reader import SlideReader

__all__ = ["TissueParams", "TissueMask", "read_thumbnail", "detect_tissue", "otsu_threshold", "optical_density"]

STAIN_COLOUR_SCALE = 500.0  # score per unit of optical density off the grey axis (pale IHC ~ 0.05)
STAIN_COLOUR_CAP = 30.0     # it only lifts pale stain over the threshold; more would bleed into glass
INK_BLUE_OD_RATIO = 0.35    # blue inks: blue OD < 0.3 x red OD; hematoxylin ~0.6 (0.45 at least)


def _ndimage():
    """``scipy.ndimage``, imported on first use: ~0.2 s that ``rckd tile --help`` and runs
    without tissue detection need not pay."""
    from scipy import ndimage

    return ndimage


@dataclasses.dataclass(frozen=True)
class TissueParams:
    """Tissue-detection settings (recorded in every tile set)."""

    method: str = "auto"            # "auto" (score as described above) or "none" (all tissue)
    thumbnail_size: int = 1024      # longest side of the detection thumbnail, pixels
    min_threshold: float = 12.0     # score floor (0..255): blank glass stays background
    max_threshold: float = 20.0     # score cap: a slide that is all tissue stays tissue
    close_um: float = 20.0          # closing radius, microns
    min_region_um2: float = 20_000.0  # smaller regions dropped (at most 2% of the image), um^2
    max_hole_um2: float = 50_000.0  # smaller holes inside tissue are filled, square microns
    exclude_pen: bool = True        # bright field: green/blue/black marker ink is not tissue
    min_pen_um2: float = 5_000.0    # ink-coloured regions smaller than this are stain, not pen


@dataclasses.dataclass
class TissueMask:
    """A boolean mask over the whole slide plus what produced it."""

    mask: np.ndarray               # (h, w) bool, covering level-0 (0, 0)-(width, height)
    info: dict                     # method, threshold, background, sizes in pixels and microns

    @property
    def fraction(self) -> float:
        """Fraction of the slide covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def read_thumbnail(reader: SlideReader, max_side: int, strip_pixels: int = 1 << 24) -> np.ndarray:
    """An RGB thumbnail whose longest side is ``min(max_side, level-0 longest side)``.

    Reads the coarsest level at least that large, in horizontal strips of at most
    ``strip_pixels`` pixels, each area-resized (PIL box filter) into place.
    """
    w0, h0 = reader.dimensions
    scale = min(1.0, max_side / max(w0, h0))
    tw, th = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    level = 0
    for i, (lw, lh) in enumerate(reader.level_dimensions):
        if lw >= tw and lh >= th:
            level = i
    lw, lh = reader.level_dimensions[level]
    ds = reader.level_downsamples[level]
    fy = lh / th
    rows = max(1, int(strip_pixels // max(lw, 1) / max(fy, 1)))  # target rows per strip
    out = np.empty((th, tw, 3), np.uint8)
    for r0 in range(0, th, rows):
        r1 = min(th, r0 + rows)
        s0, s1 = int(math.floor(r0 * fy)), min(lh, int(math.ceil(r1 * fy)))
        strip = reader.read_region((0, int(round(s0 * ds))), level, (lw, s1 - s0))
        img = Image.fromarray(strip)
        box = (0.0, r0 * fy - s0, float(lw), r1 * fy - s0)
        out[r0:r1] = np.asarray(img.resize((tw, r1 - r0), Image.Resampling.BOX, box=box))
    return out


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8-ranged values (the upper class is ``values > threshold``)."""
    hist = np.bincount(np.clip(values, 0, 255).astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(np.argmax(between))


def _border(img: np.ndarray, frac: float = 0.04) -> np.ndarray:
    h, w = img.shape[:2]
    by, bx = max(1, int(h * frac)), max(1, int(w * frac))
    parts = [img[:by].reshape(-1, 3), img[-by:].reshape(-1, 3),
             img[:, :bx].reshape(-1, 3), img[:, -bx:].reshape(-1, 3)]
    return np.concatenate(parts)


def optical_density(thumb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Optical density of each pixel relative to ``background`` (Beer-Lambert, per channel)."""
    return np.log((np.asarray(background, np.float32) + 1.0) / (thumb.astype(np.float32) + 1.0))


def _stain_colour(od: np.ndarray) -> np.ndarray:
    """Length of the optical density off the grey axis: stain colour, blind to grey shading.

    Stains absorb some colours more than others (hematoxylin red and green, DAB blue, eosin
    green); dust, shadows and uneven illumination darken all channels alike and score ~0.
    """
    off_grey = od - od.mean(axis=2, keepdims=True)
    return np.sqrt(np.einsum("ijk,ijk->ij", off_grey, off_grey))


def _score(thumb: np.ndarray) -> tuple[np.ndarray, dict]:
    bg = np.median(_border(thumb), axis=0).astype(np.float32)
    brightfield = float(bg.mean()) >= 128.0
    if brightfield:
        mx = thumb.max(axis=2)
        sat = (mx - thumb.min(axis=2)).astype(np.float32) * 255.0 / np.maximum(mx, 1)
        colour = np.minimum(STAIN_COLOUR_SCALE * _stain_colour(optical_density(thumb, bg)), STAIN_COLOUR_CAP)
        score = np.maximum(sat, colour)
    else:
        diff = thumb.astype(np.float32) - bg
        score = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff) / 3.0)
    score = _ndimage().uniform_filter(score, size=3)
    return score, {"background_rgb": [round(float(v), 1) for v in bg],
                   "field": "bright" if brightfield else "dark"}


def _pen_marks(thumb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Bright-field pixels that look like marker ink, not stain: saturated green or blue, or black.

    H&E (pink to purple, hue 260-360 and 0-20 degrees) and DAB (brown, 20-50) stay; pen inks are
    green (75-185), blue (185-235) or near black. Hematoxylin can look blue too (hue ~230 after
    bluing, saturated where dense, as in lymphoid IHC controls), but it absorbs blue light at
    about half its red absorbance whatever its density, where blue inks barely absorb blue: a
    blue pixel is ink only if its blue optical density is under ``INK_BLUE_OD_RATIO`` of its red.
    """
    od = optical_density(thumb, background)
    rgb = thumb.astype(np.float32) / 255.0
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    chroma = mx - mn
    sat = chroma / np.maximum(mx, 1e-6)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    green = (hue >= 75) & (hue < 185) & (sat > 0.25)
    blue = (hue >= 185) & (hue < 235) & (sat > 0.4) & (od[..., 2] < INK_BLUE_OD_RATIO * od[..., 0])
    black = (mx < 50 / 255) & (sat < 0.35)  # dark nuclei are dark but saturated purple
    return ((green | blue) & (chroma > 0.08)) | black


def _closing(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing by a disk via two Euclidean distance transforms (cost independent of radius)."""
    pad = radius + 1
    padded = np.pad(mask, pad)
    dilated = _ndimage().distance_transform_edt(~padded) <= radius
    closed = _ndimage().distance_transform_edt(dilated) > radius
    return closed[pad:-pad, pad:-pad]


def detect_tissue(thumb: np.ndarray, thumb_mpp: float, params: TissueParams = TissueParams()) -> TissueMask:
    """Tissue mask of an RGB thumbnail whose pixels are ``thumb_mpp`` microns wide."""
    h, w = thumb.shape[:2]
    base = {"method": params.method, "thumbnail_width": w, "thumbnail_height": h,
            "thumbnail_mpp": round(float(thumb_mpp), 4), **dataclasses.asdict(params)}
    if params.method == "none":
        return TissueMask(np.ones((h, w), bool), base)
    if params.method != "auto":
        raise ValueError(f"unknown tissue method {params.method!r} (use 'auto' or 'none')")
    score, info = _score(thumb)
    pen = None
    if params.exclude_pen and info["field"] == "bright":
        pen = _drop_small(_pen_marks(thumb, info["background_rgb"]), params.min_pen_um2 / thumb_mpp ** 2)
        pen = _ndimage().binary_dilation(pen, iterations=2) if pen.any() else None  # + smoothing halo
    if pen is not None:
        score[pen] = 0.0
    otsu = otsu_threshold(score)
    thr = float(min(max(otsu, params.min_threshold), params.max_threshold))
    mask = score > thr
    px_area = thumb_mpp ** 2
    radius = int(round(params.close_um / thumb_mpp))
    if radius >= 1:
        mask = _closing(mask, radius)
    min_region = min(params.min_region_um2, 0.02 * h * w * px_area)  # tiny images keep their tissue
    mask = _drop_small(mask, min_region / px_area)
    holes = _drop_small(~mask, params.max_hole_um2 / px_area, keep_border=True)
    mask = ~holes
    if pen is not None:
        mask &= ~pen  # closing must not bridge a stroke back into tissue
    info.update(base, otsu_threshold=otsu, threshold=thr, close_px=radius,
                min_region_um2_used=round(min_region, 1))
    return TissueMask(mask, info)


def _drop_small(mask: np.ndarray, min_pixels: float, keep_border: bool = False) -> np.ndarray:
    """Remove connected components smaller than ``min_pixels`` (optionally keep border-touching ones)."""
    if min_pixels <= 1 or not mask.any():
        return mask
    labels, n = _ndimage().label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    if keep_border:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        keep[edge[edge > 0]] = True
    return keep[labels]
