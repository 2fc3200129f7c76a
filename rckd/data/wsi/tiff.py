"""Tiled TIFFs: region reads assembled from the file's own tiles, and writing pyramids.

OpenSlide composites every region through cairo into premultiplied RGBA; for Aperio and generic
tiled TIFFs with JPEG/deflate/LZW/raw tiles, decoding the stored tiles directly gives the same
pixels (checked on the CMU slide) several times faster. Decoded tiles are kept in a small LRU
cache (per process), so row-major reads decode each stored tile about once; a read that is
exactly one stored JPEG tile is decoded straight into the caller's buffer, without a copy.
"""

from __future__ import annotations

import collections
import math
import os
from pathlib import Path

import numpy as np

from rckd.io import atomic_path

__all__ = ["TiledTiffLevels", "FAST_COMPRESSIONS", "write_pyramid"]

FAST_COMPRESSIONS = (1, 5, 7, 8, 32946)  # none, LZW, JPEG, deflate (Adobe and old-style)
JPEG = 7


class TiledTiffLevels:
    """The pyramid levels of a tiled TIFF that can be read from the file's own tiles.

    Levels that do not map to such a page stay with the caller's other reader.
    """

    def __init__(self, tif, pages: dict[int, object], cache_bytes: int = 96 << 20):
        self._tif = tif
        self._pages = pages
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_bytes = cache_bytes
        self._used = 0
        self._jpeg_args = {lvl: _jpeg_args(page) for lvl, page in pages.items()}

    @classmethod
    def open(cls, path: str | Path, level_dimensions) -> "TiledTiffLevels | None":
        """Map pyramid levels (OpenSlide's ``level_dimensions``) to tiled pages of ``path``.

        Returns None when no level maps (not a TIFF, or no suitable tiled page).
        """
        try:
            import tifffile

            tif = tifffile.TiffFile(str(path))
        except Exception:  # noqa: BLE001 - not a TIFF family file
            return None
        candidates = []
        for series in tif.series:
            for level in series.levels:
                candidates.append(level.keyframe if hasattr(level, "keyframe") else level.pages[0])
        pages = {}
        for lvl, (w, h) in enumerate(level_dimensions):
            for page in candidates:
                if (page.imagewidth, page.imagelength) == (w, h) and page.is_tiled \
                        and page.samplesperpixel in (3, 4) and page.dtype == np.uint8 \
                        and page.imagedepth == 1 and page.planarconfig == 1 \
                        and int(page.compression) in FAST_COMPRESSIONS:
                    pages[lvl] = page
                    break
        if not pages:
            tif.close()
            return None
        return cls(tif, pages)

    def has(self, level: int) -> bool:
        """Whether ``level`` is served from the file's tiles."""
        return level in self._pages

    def _data(self, page, index: int) -> bytes:
        fh = self._tif.filehandle
        fh.seek(page.dataoffsets[index])
        return fh.read(page.databytecounts[index])

    def _tile(self, level: int, index: int) -> np.ndarray:
        page = self._pages[level]
        key = (level, index)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        tile = page.decode(self._data(page, index), index, jpegtables=page.jpegtables)[0]
        tile = np.asarray(tile).reshape(page.tilelength, page.tilewidth, -1)[..., :3]
        self._cache[key] = tile
        self._used += tile.nbytes
        while self._used > self._cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._used -= old.nbytes
        return tile

    def _decode_into(self, level: int, index: int, out: np.ndarray) -> bool:
        """Decode stored JPEG tile ``index`` straight into ``out``; False when that is not possible."""
        args = self._jpeg_args.get(level)
        if args is None or (level, index) in self._cache or not out.flags.c_contiguous:
            return False
        import imagecodecs

        page = self._pages[level]
        imagecodecs.jpeg8_decode(self._data(page, index), out=out, **args)
        return True

    def read(self, level: int, x: int, y: int, w: int, h: int, out: np.ndarray | None = None) -> np.ndarray:
        """(h, w, 3) RGB pixels of ``level`` starting at level pixel (x, y); white outside.

        ``out``, if given, is an (h, w, 3) uint8 array to fill and return.
        """
        page = self._pages[level]
        W, H = page.imagewidth, page.imagelength
        tw, th = page.tilewidth, page.tilelength
        per_row = math.ceil(W / tw)
        if out is None:
            out = np.empty((h, w, 3), np.uint8)
        if (w, h) == (tw, th) and x % tw == 0 and y % th == 0 and 0 <= x and 0 <= y \
                and x + w <= W and y + h <= H and self._decode_into(level, y // th * per_row + x // tw, out):
            return out
        if x < 0 or y < 0 or x + w > W or y + h > H:
            out[...] = 255
        for ty in range(max(y, 0) // th, min(y + h, H) // th + 1):
            for tx in range(max(x, 0) // tw, min(x + w, W) // tw + 1):
                if ty * th >= H or tx * tw >= W:
                    continue
                x0, y0 = max(x, tx * tw), max(y, ty * th)
                x1, y1 = min(x + w, (tx + 1) * tw, W), min(y + h, (ty + 1) * th, H)
                if x1 > x0 and y1 > y0:
                    tile = self._tile(level, ty * per_row + tx)
                    out[y0 - y:y1 - y, x0 - x:x1 - x] = tile[y0 - ty * th:y1 - ty * th,
                                                             x0 - tx * tw:x1 - tx * tw]
        return out

    def close(self) -> None:
        """Close the file."""
        self._tif.close()


def _jpeg_args(page) -> dict | None:
    """imagecodecs.jpeg8_decode arguments that decode one RGB JPEG tile of ``page`` as tifffile does."""
    if int(page.compression) != JPEG or page.samplesperpixel != 3 or page.bitspersample != 8:
        return None
    try:
        from tifffile.tifffile import jpeg_decode_colorspace
    except ImportError:  # tifffile without it: tiles are decoded through page.decode instead
        return None
    colorspace, outcolorspace = jpeg_decode_colorspace(page.photometric, page.planarconfig,
                                                       page.extrasamples, page.is_jfif)
    return {"tables": page.jpegtables, "colorspace": colorspace, "outcolorspace": outcolorspace,
            "shape": (page.tilelength, page.tilewidth)}


def write_pyramid(path: str | os.PathLike, image: np.ndarray, mpp: float | None, tile: int = 256,
                  quality: int = 90) -> Path:
    """Write an (H, W, 3) uint8 image as a pyramidal tiled JPEG TIFF that OpenSlide opens.

    Levels halve until one fits a tile; ``mpp`` is written as TIFF resolution in pixels per
    centimetre (OpenSlide's ``openslide.mpp-x``). Written atomically.
    """
    import tifffile
    from PIL import Image

    level = np.ascontiguousarray(image, np.uint8)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=level.nbytes > 2 ** 31) as tif:
        for i in range(32):
            extra = {}
            if mpp is not None:
                ppcm = 1e4 / (mpp * 2 ** i)
                extra = {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER"}
            tif.write(level, tile=(tile, tile), photometric="rgb", compression="jpeg",
                      compressionargs={"level": quality}, subfiletype=1 if i else 0, metadata=None, **extra)
            if max(level.shape[:2]) <= tile:
                break
            level = np.asarray(Image.fromarray(level).reduce(2))
    return Path(path)
