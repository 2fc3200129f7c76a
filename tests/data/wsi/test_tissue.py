"""Tissue detection: bright-field and dark-field, blank slides, all-tissue crops, bounded thumbnails."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rckd.data.wsi.reader import ImageReader, open_slide
from rckd.data.wsi.tissue import TissueParams, detect_tissue, otsu_threshold, read_thumbnail
from tests.conftest import shared_path  # noqa: F401  (import style of the suite)


def _glass(h=200, w=300, rgb=(242, 241, 239), noise=2, seed=0):
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = rgb
    img += rng.normal(0, noise, img.shape)
    return img


def _blob(img, cy, cx, r, rgb):
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img[inside] = rgb
    return inside


def test_otsu_splits_bimodal():
    values = np.concatenate([np.full(100, 10), np.full(100, 200)])
    assert 10 <= otsu_threshold(values) < 200


def test_brightfield_blob_found_speck_dropped():
    img = _glass()
    truth = _blob(img, 100, 150, 50, (200, 120, 170))
    _blob(img, 20, 20, 2, (120, 60, 140))  # a speck of dust, far below min_region
    mask = detect_tissue(np.clip(img, 0, 255).astype(np.uint8), 2.0).mask
    assert (mask & truth).sum() / truth.sum() > 0.97
    assert (mask & ~truth).sum() < 0.05 * truth.sum()
    assert not mask[15:25, 15:25].any()


def test_faint_tissue_found():
    img = _glass()
    truth = _blob(img, 100, 150, 50, (236, 216, 228))  # very pale pink
    mask = detect_tissue(np.clip(img, 0, 255).astype(np.uint8), 2.0).mask
    assert (mask & truth).sum() / truth.sum() > 0.9


def test_darkfield_fluorescence_found():
    img = _glass(rgb=(2, 2, 6), noise=1)
    truth = _blob(img, 100, 150, 50, (10, 20, 90))  # dim blue nuclear stain on black
    tm = detect_tissue(np.clip(img, 0, 255).astype(np.uint8), 2.0)
    assert tm.info["field"] == "dark"
    assert (tm.mask & truth).sum() / truth.sum() > 0.97 and (tm.mask & ~truth).sum() < 0.05 * truth.sum()


def test_blank_glass_has_no_tissue_and_all_tissue_is_all():
    blank = np.clip(_glass(noise=3), 0, 255).astype(np.uint8)
    assert detect_tissue(blank, 2.0).mask.sum() == 0
    rng = np.random.default_rng(1)
    tissue = np.clip(rng.normal((190, 110, 160), 20, (200, 300, 3)), 0, 255).astype(np.uint8)
    assert detect_tissue(tissue, 2.0).fraction > 0.99


def test_small_holes_filled_large_holes_kept():
    img = _glass(300, 300)
    _blob(img, 150, 150, 140, (200, 120, 170))
    small = _blob(img, 100, 100, 4, (242, 241, 239))    # ~50 px^2 at 2 um/px: filled
    large = _blob(img, 180, 180, 60, (242, 241, 239))   # ~45,000 um^2 ... at 2 um/px: kept
    mask = detect_tissue(np.clip(img, 0, 255).astype(np.uint8), 2.0,
                         TissueParams(max_hole_um2=10_000)).mask
    assert mask[small].all()
    assert not mask[175:185, 175:185].any() and large.sum() > 0


def test_pen_marks_are_not_tissue():
    img = _glass(300, 400)
    truth = _blob(img, 150, 120, 80, (200, 120, 170))
    img[40:52, 220:390] = (40, 150, 60)     # green marker stroke on glass
    img[250:262, 220:390] = (30, 60, 190)   # blue marker stroke
    _blob(img, 150, 320, 20, (25, 25, 30))  # black ink dot
    thumb = np.clip(img, 0, 255).astype(np.uint8)
    mask = detect_tissue(thumb, 2.0).mask
    assert (mask & truth).sum() / truth.sum() > 0.97
    assert not mask[40:52, 230:380].any() and not mask[250:262, 230:380].any() and not mask[140:160, 310:330].any()
    kept = detect_tissue(thumb, 2.0, TissueParams(exclude_pen=False)).mask
    assert kept[40:52, 230:380].mean() > 0.9  # without the filter the ink would be tiled


def test_method_none_is_all_tissue():
    img = np.full((10, 20, 3), 255, np.uint8)
    assert detect_tissue(img, 1.0, TissueParams(method="none")).mask.all()
    with pytest.raises(ValueError, match="unknown tissue method"):
        detect_tissue(img, 1.0, TissueParams(method="magic"))


def test_thumbnail_bounded_and_strips_agree(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (700, 1000, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "big.png")
    reader = ImageReader(tmp_path / "big.png", mpp=0.5)
    one = read_thumbnail(reader, 300)
    many = read_thumbnail(reader, 300, strip_pixels=5000)  # forces ~60 strips
    assert one.shape == (210, 300, 3)
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1


def test_pyramid_thumbnail_reads_a_coarse_level(slides):
    reader = open_slide(slides["tissue"])
    thumb = read_thumbnail(reader, 200)
    assert max(thumb.shape[:2]) == 200


def test_real_slides_tissue_fractions():
    cmu = open_slide(shared_path("wsi", "CMU-1-Small-Region.svs"))
    tm = detect_tissue(read_thumbnail(cmu, 512), 0.499 * 2220 / 383)
    assert tm.info["field"] == "bright" and 0.3 < tm.fraction < 0.55
    ndpi = open_slide(shared_path("wsi", "test3-DAPI-2-(387).ndpi"))
    thumb = read_thumbnail(ndpi, 512)
    tm = detect_tissue(thumb, ndpi.mpp * ndpi.dimensions[0] / thumb.shape[1])
    assert tm.info["field"] == "dark" and 0.4 < tm.fraction < 0.95
