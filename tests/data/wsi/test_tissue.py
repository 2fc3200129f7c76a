"""Tissue detection: H&E, IHC and dark-field, pale tissue, pen, dust, blank slides, bounded thumbnails."""

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


@pytest.fixture(scope="module")
def ihc_stains():
    """scikit-image's real IHC image (DAB + hematoxylin) as stain densities, and its hematoxylin colour."""
    from skimage import data
    from skimage.color import rgb2hed

    image = data.immunohistochemistry()
    od = -np.log((image.astype(np.float64) + 1) / 256)
    blue = od[image[..., 2].astype(int) > image[..., 0].astype(int) + 25]  # its blued hematoxylin
    hematoxylin = (blue / np.linalg.norm(blue, axis=1, keepdims=True)).mean(0)
    return image, rgb2hed(image), hematoxylin / np.linalg.norm(hematoxylin)


def _stained(hed, h=1.0, dab=1.0):
    """The IHC image re-stained: hematoxylin and DAB densities scaled, eosin dropped."""
    from skimage.color import hed2rgb

    rgb = hed2rgb(np.stack([hed[..., 0] * h, np.zeros(hed.shape[:2]), hed[..., 2] * dab], -1))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _dense_blue(hed, h_colour):
    """Densely counterstained tissue (a lymphoid IHC control) as a coarse thumbnail shows it: the
    image's hematoxylin density, smoothed and 3.5 x, in the image's own blued hematoxylin colour,
    saturated enough (hue ~230, saturation ~0.4) to pass the plain hue/saturation test for blue ink."""
    from scipy import ndimage

    density = ndimage.gaussian_filter(np.clip(hed[..., 0] - hed[..., 0].min(), 0, None), 6) * 3.5 * 30
    return np.clip(256 * np.exp(-density[..., None] * h_colour) - 1, 0, 255).astype(np.uint8)


def _on_glass(tissue, pen=True, dust=True, size=(1200, 900), reduce=4):
    """A slide of ``tissue`` (mirrored) as an oval island on glass, with marker strokes and dust,
    and its thumbnail at ``reduce`` x; returns (thumbnail, tissue truth, ink truth, dust truth)."""
    h, w = size
    img = _glass(h, w, seed=3)
    yy, xx = np.mgrid[:h, :w]
    truth = ((yy - h / 2) / (0.32 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2 <= 1
    big = np.pad(tissue, ((0, h - tissue.shape[0]), (0, w - tissue.shape[1]), (0, 0)), mode="symmetric")
    img[truth] = big[truth]
    ink, specks = np.zeros((h, w), bool), np.zeros((h, w), bool)
    if pen:
        ink[40:80, 100:800] = ink[h - 80:h - 40, 100:800] = True
        img[40:80, 100:800], img[h - 80:h - 40, 100:800] = (35, 65, 185), (40, 150, 70)  # blue, green
    if dust:
        for y, x in np.random.default_rng(4).integers(100, 1000, (25, 2)) % (h, w):
            if not truth[y, x]:
                img[y:y + 8, x:x + 8], specks[y:y + 8, x:x + 8] = (70, 68, 66), True
    thumb = np.asarray(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).reduce(reduce))
    small = [np.asarray(Image.fromarray(m.astype(np.uint8) * 255).reduce(reduce)) > 127
             for m in (truth, ink, specks)]
    return (thumb, *small)


def test_ihc_image_is_tissue(ihc_stains):
    image, _, _ = ihc_stains
    tm = detect_tissue(image, 0.5)
    assert tm.info["field"] == "bright" and tm.fraction > 0.95  # a crop of tissue: nearly all of it


@pytest.mark.parametrize("stain", ["as imaged", "pale, no DAB", "dense blue counterstain"])
def test_ihc_slides_found_without_glass_pen_or_dust(ihc_stains, stain):
    image, hed, h_colour = ihc_stains
    tissue = {"as imaged": image, "pale, no DAB": _stained(hed, h=0.4, dab=0.0),
              "dense blue counterstain": _dense_blue(hed, h_colour)}[stain]
    thumb, truth, ink, specks = _on_glass(tissue)
    tm = detect_tissue(thumb, 2.0)
    assert (tm.mask & truth).sum() / truth.sum() > 0.97
    assert (tm.mask & ~truth).sum() < 0.03 * truth.sum()
    assert not (tm.mask & (ink | specks)).any()
