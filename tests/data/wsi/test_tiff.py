"""Direct decoding of tiled TIFF levels equals OpenSlide, including the decode-into-place path."""

from __future__ import annotations

import numpy as np

from rckd.data.wsi.reader import open_slide
from tests.conftest import shared_path


def _pair(path):
    return open_slide(path), open_slide(path, fast=False)


def test_cmu_regions_equal_openslide():
    fast, plain = _pair(shared_path("wsi", "CMU-1-Small-Region.svs"))  # Aperio: 240-px RGB JPEG tiles
    assert fast.cheap_reads(0) and not plain.cheap_reads(0)
    for x, y, w, h in [(0, 0, 240, 240), (480, 720, 240, 240), (100, 333, 517, 250), (2100, 2900, 300, 200)]:
        out = np.full((h, w, 3), 7, np.uint8)
        got = fast.read_region((x, y), 0, (w, h), out=out)
        assert got is out and (got == plain.read_region((x, y), 0, (w, h))).all(), (x, y, w, h)
    assert (fast.read_region((2100, 2900), 0, (300, 200))[-100:] == 255).all()  # below the slide: white


def test_one_stored_tile_is_decoded_into_place(slides):
    fast, plain = _pair(slides["tissue"])  # tifffile-written YCbCr JPEG, 256-px tiles, 3 levels
    levels = fast._fast
    out = np.empty((256, 256, 3), np.uint8)
    assert levels._decode_into(0, 3, out)  # the zero-copy path is available here
    for level, ds in ((0, 1), (1, 2)):
        xy = (512 * ds, 256 * ds)  # level pixel (512, 256): one whole stored tile
        region = fast.read_region(xy, level, (256, 256), out=np.empty((256, 256, 3), np.uint8))
        assert (region == plain.read_region(xy, level, (256, 256))).all()
    assert not levels._cache  # aligned whole-tile reads never went through the tile cache
    fast.read_region((100, 100), 0, (256, 256))
    assert levels._cache
