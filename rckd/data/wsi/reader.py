"""Slide readers: one small interface over OpenSlide and plain images.

A reader exposes the pyramid (``level_dimensions``, ``level_downsamples``), the level-0
microns per pixel (``mpp``, ``None`` when the file does not say) and ``read_region`` returning an
RGB ``uint8`` array. :func:`open_slide` picks OpenSlide for whole-slide formats and falls back to
a plain-image reader (PNG, JPEG, BMP, single-image TIFF), which has no mpp of its own: the caller
supplies one. mpp is read exactly as stored (``openslide.mpp-x``, else TIFF resolution tags),
never guessed from a nominal objective power.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from rckd.data.wsi.tiff import TiledTiffLevels

__all__ = ["SlideReader", "OpenSlideReader", "ImageReader", "open_slide", "slide_fingerprint",
           "require_mpp", "SLIDE_SUFFIXES", "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide",
                  ".bif", ".dcm", ".czi")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

Image.MAX_IMAGE_PIXELS = None  # plain images are the user's own files; size is checked by memory


class SlideReader:
    """Common interface: pyramid geometry, level-0 mpp and RGB region reads."""

    path: Path
    mpp: float | None
    vendor: str
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_dimensions)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int],
                    out: np.ndarray | None = None) -> np.ndarray:
        """Read ``size`` (w, h) pixels of ``level`` whose top-left is ``location`` in level-0 pixels.

        Returns an (h, w, 3) uint8 RGB array; pixels outside the slide are white. ``out``, if
        given, is an array of that shape to fill and return (readers that can decode into it
        save a copy).
        """
        raise NotImplementedError

    def cheap_reads(self, level: int) -> bool:
        """Whether a small read at ``level`` costs about its pixels, with no per-call overhead.

        Extraction then reads tile by tile (each stored tile decoded once, into place); other
        readers are read in strips that are cut into tiles.
        """
        return False

    def close(self) -> None:
        """Release the file handle."""

    def __enter__(self) -> "SlideReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rgba_to_rgb(rgba: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """OpenSlide gives premultiplied RGBA; transparent pixels (outside the scan) become white."""
    if out is None:
        out = np.empty(rgba.shape[:2] + (3,), np.uint8)
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        out[...] = rgba[..., :3]
        return out
    a = alpha.astype(np.uint16)[..., None]
    out[...] = np.minimum(rgba[..., :3] + (255 - a), 255)  # premultiplied over white
    return out


def _openslide_mpp(props) -> float | None:
    """Level-0 mpp from OpenSlide properties, or None. Uses exact values, never objective power."""
    for key in ("openslide.mpp-x", "openslide.mpp-y"):
        value = props.get(key)
        if value not in (None, ""):
            try:
                mpp = float(value)
            except ValueError:
                continue
            if mpp > 0:
                return mpp
    unit = (props.get("tiff.ResolutionUnit") or "").lower()
    res = props.get("tiff.XResolution")
    if res and unit in ("centimeter", "inch"):
        try:
            res_f = float(res)
        except ValueError:
            return None
        if res_f > 0:
            mpp = (1e4 if unit == "centimeter" else 25400.0) / res_f
            if 0.01 < mpp < 100:
                return mpp
    return None


FAST_VENDORS = ("aperio", "generic-tiff")


class OpenSlideReader(SlideReader):
    """Whole-slide formats through OpenSlide (svs, tiff, ndpi, mrxs, scn, ...)."""

    def __init__(self, path: str | os.PathLike, fast: bool = True):
        import openslide

        self.path = Path(path)
        self._openslide = openslide
        self._slide = openslide.OpenSlide(str(self.path))
        props = self._slide.properties
        self.vendor = props.get("openslide.vendor", "unknown")
        self.mpp = _openslide_mpp(props)
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in self._slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._slide.level_downsamples)
        self.objective_power = _float_or_none(props.get("openslide.objective-power"))
        self._fast = None
        if fast and self.vendor in FAST_VENDORS:
            self._fast = TiledTiffLevels.open(self.path, self.level_dimensions)

    def read_region(self, location, level, size, out=None):
        x, y, level = int(location[0]), int(location[1]), int(level)
        if self.cheap_reads(level):
            ds = self.level_downsamples[level]
            lx, ly = x / ds, y / ds
            if abs(lx - round(lx)) < 1e-6 and abs(ly - round(ly)) < 1e-6:  # no sub-pixel shift
                try:
                    return self._fast.read(level, round(lx), round(ly), int(size[0]), int(size[1]), out)
                except Exception as exc:  # noqa: BLE001 - let OpenSlide try (and report) it
                    log.debug("%s: direct tile decode failed (%s); using OpenSlide", self.path, exc)
        img = self._slide.read_region((x, y), level, (int(size[0]), int(size[1])))
        return _rgba_to_rgb(np.asarray(img), out)

    def cheap_reads(self, level):
        return self._fast is not None and self._fast.has(level)

    def reopen(self) -> None:
        """Reopen after an OpenSlide error (an OpenSlide handle stays failed once it errs)."""
        try:
            self._slide.close()
        except Exception:  # noqa: BLE001 - the handle is already broken
            pass
        self._slide = self._openslide.OpenSlide(str(self.path))

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._slide.close()


class ImageReader(SlideReader):
    """A plain image held in memory as one level; its mpp must be given."""

    def __init__(self, path: str | os.PathLike, mpp: float | None = None):
        self.path = Path(path)
        try:
            with Image.open(self.path) as img:
                self._array = np.asarray(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: cannot read image ({exc})") from None
        self.vendor = "image"
        self.mpp = mpp
        self.objective_power = None
        h, w = self._array.shape[:2]
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)

    def read_region(self, location, level, size, out=None):
        if level != 0:
            raise ValueError(f"{self.path}: plain images have one level, got level {level}")
        x, y = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        H, W = self._array.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
        if out is None:
            out = np.empty((h, w, 3), np.uint8)
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            out[...] = 255
        if x1 > x0 and y1 > y0:
            out[y0 - y:y1 - y, x0 - x:x1 - x] = self._array[y0:y1, x0:x1]
        return out

    def cheap_reads(self, level):
        return True

    def close(self) -> None:
        self._array = np.zeros((0, 0, 3), np.uint8)


def _float_or_none(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def open_slide(path: str | os.PathLike, mpp: float | None = None, force_mpp: bool = False,
               fast: bool = True) -> SlideReader:
    """Open ``path`` with OpenSlide, or as a plain image when OpenSlide cannot read it.

    ``mpp`` fills in a missing level-0 mpp (or replaces the stored one when ``force_mpp``);
    ``fast`` lets tiled TIFFs be decoded directly (:class:`TiledTiffLevels`).
    Raises ``FileNotFoundError``/``ValueError`` with one line naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: slide not found")
    reader: SlideReader | None = None
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".bmp"):
        try:
            reader = OpenSlideReader(path, fast=fast)
        except Exception as exc:  # noqa: BLE001 - OpenSlideUnsupportedFormatError and friends
            if suffix in SLIDE_SUFFIXES and suffix not in IMAGE_SUFFIXES:
                raise ValueError(f"{path}: OpenSlide cannot open it ({exc})") from None
            log.debug("%s: OpenSlide failed (%s); trying the plain-image reader", path, exc)
    if reader is None:
        reader = ImageReader(path)
    if mpp is not None and (reader.mpp is None or force_mpp):
        if mpp <= 0:
            raise ValueError(f"{path}: mpp must be positive, got {mpp}")
        reader.mpp = float(mpp)
    return reader


def require_mpp(reader: SlideReader) -> float:
    """Return the reader's level-0 mpp or raise one clear line saying how to supply it."""
    if reader.mpp is None:
        raise ValueError(f"{reader.path}: no microns-per-pixel in the file's metadata; "
                         "give it with --mpp or an 'mpp' column in the input CSV")
    return float(reader.mpp)


def slide_fingerprint(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """A cheap content fingerprint: size plus sha256 of the first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(block))
        if size > block:
            f.seek(max(size - block, block))
            h.update(f.read(block))
    return f"{size}:{h.hexdigest()[:32]}"
