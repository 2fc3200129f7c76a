"""Slide readers: OpenSlide, the plain-image fallback, mpp handling and fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rckd.data.wsi.reader import ImageReader, open_slide, require_mpp, slide_fingerprint
from tests.conftest import shared_path


def test_openslide_levels_and_mpp():
    with open_slide(shared_path("wsi", "CMU-1-Small-Region_crop512_generic-tiled.tiff")) as r:
        assert r.dimensions == (512, 512) and r.level_count == 3 and r.mpp == pytest.approx(0.499)
        region = r.read_region((0, 0), 1, (64, 32))
        assert region.shape == (32, 64, 3) and region.dtype == np.uint8


def test_missing_mpp_is_a_clear_error_then_given():
    path = shared_path("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    with open_slide(path) as r:
        assert r.mpp is None
        with pytest.raises(ValueError, match="tcga-cr-7395.*--mpp"):
            require_mpp(r)
    with open_slide(path, mpp=0.25) as r:
        assert require_mpp(r) == 0.25


def test_force_mpp_replaces_stored_value():
    path = shared_path("wsi", "CMU-1-Small-Region.svs")
    assert open_slide(path, mpp=0.3).mpp == pytest.approx(0.499)
    assert open_slide(path, mpp=0.3, force_mpp=True).mpp == 0.3


def test_plain_image_reader_pads_white(tmp_path):
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :, 0] = 100
    Image.fromarray(arr).save(tmp_path / "a.png")
    r = open_slide(tmp_path / "a.png")
    assert isinstance(r, ImageReader) and r.mpp is None and r.dimensions == (30, 20)
    region = r.read_region((25, 15), 0, (10, 10))
    assert (region[:5, :5, 0] == 100).all() and (region[5:, :] == 255).all()


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.svs"):
        open_slide(tmp_path / "nope.svs")
    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"not a slide at all")
    with pytest.raises(ValueError, match="bad.svs"):
        open_slide(bad)


def test_fingerprint_tracks_content(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"a" * 3_000_000)
    f1 = slide_fingerprint(p)
    assert f1 == slide_fingerprint(p)
    p.write_bytes(b"a" * 2_999_999 + b"b")
    assert slide_fingerprint(p) != f1
