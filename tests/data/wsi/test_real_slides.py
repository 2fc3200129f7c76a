"""The real slides in ../shared/data/wsi tiled at small settings (skipped when absent)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from rckd.data.wsi.pipeline import TileConfig, run_dir_name, run_tiling
from rckd.io import read_json
from tests.conftest import shared_path


def _tile(tmp_path, slide, **kw):
    cfg = TileConfig(slides=[str(slide)], out=str(tmp_path), progress=False, **{"thumbnail_size": 1024, **kw})
    code = run_tiling(cfg)
    run = tmp_path / run_dir_name(cfg)
    return code, run


def _h5(run, name):
    with h5py.File(run / "patches" / f"{name}.h5") as f:
        return f["coords"][()], dict(f["coords"].attrs), (f["imgs"][()] if "imgs" in f else None)


def test_cmu_at_half_micron(tmp_path):
    code, run = _tile(tmp_path, shared_path("wsi", "CMU-1-Small-Region.svs"), target_mpp=0.5,
                      patch_size=256, save_images=True)
    coords, attrs, imgs = _h5(run, "CMU-1-Small-Region")
    assert code == 0 and 25 <= len(coords) <= 60  # about 40 % of an 8 x 11 grid
    assert attrs["level0_mpp"] == pytest.approx(0.499) and attrs["patch_size_level0"] == 257
    assert attrs["read_level"] == 0 and attrs["target_magnification"] == 20.0  # TRIDENT: 10 / mpp
    assert attrs["level0_magnification"] == pytest.approx(10 / 0.499) and attrs["objective_power"] == 20
    assert imgs.shape == (len(coords), 256, 256, 3)
    assert imgs.reshape(len(imgs), -1, 3).std(axis=1).mean() > 20  # tissue, not glass
    assert read_json(run / "state" / "CMU-1-Small-Region.json")["tissue_fraction"] == pytest.approx(0.40, abs=0.08)


def test_tcga_without_mpp_fails_clearly_then_works(tmp_path):
    slide = shared_path("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    with pytest.raises(ValueError, match="tcga-cr-7395-01a-01-ts1.svs: no microns-per-pixel"):
        _tile(tmp_path, slide, target_mpp=2.0, patch_size=128)
    code, run = _tile(tmp_path, slide, target_mpp=2.0, patch_size=128, mpp=0.5)
    coords, attrs, _ = _h5(run, "tcga-cr-7395-01a-01-ts1")
    assert code == 0 and attrs["level0_mpp"] == 0.5 and attrs["read_level"] == 1 and attrs["read_size"] == 256
    assert 25 <= len(coords) <= 45  # ~65 % of the 8 x 6 grid of 512-px footprints


def test_generic_tiff_multilevel(tmp_path):
    code, run = _tile(tmp_path, shared_path("wsi", "CMU-1-Small-Region_crop512_generic-tiled.tiff"),
                      target_mpp=1.0, patch_size=64, save_images=True)
    coords, attrs, imgs = _h5(run, "CMU-1-Small-Region_crop512_generic-tiled")
    assert code == 0 and attrs["read_level"] == 1 and attrs["read_size"] == 64 and attrs["patch_size_level0"] == 128
    # all tissue: the full grid; 128.26 level-0 px steps (exact mpp 0.499) fit 3 per 512-px side
    assert coords[:, 0].tolist() == [0, 128, 257] * 3 and imgs.shape == (9, 64, 64, 3)


def test_ndpi_fluorescence_dark_background(tmp_path):
    code, run = _tile(tmp_path, shared_path("wsi", "test3-DAPI-2-(387).ndpi"), target_mpp=2.0,
                      patch_size=128, save_images=True)
    name = "test3-DAPI-2-(387)"
    coords, attrs, imgs = _h5(run, name)
    state = read_json(run / "state" / f"{name}.json")
    assert code == 0 and json_field(attrs["tissue_params"], "field") == "dark"
    assert attrs["read_level"] == 3 and 0.4 < state["tissue_fraction"] < 0.95
    total = (3968 * 4864) / (128 * 2.0 / 0.2281750559) ** 2
    assert 0.3 * total < len(coords) < 0.95 * total
    assert np.mean([t.mean() for t in imgs]) > 5  # tiles hold stained nuclei, not black glass


def json_field(text, key):
    import json
    return json.loads(text)[key]


def test_ihc_slide_is_tiled_with_its_tissue(tmp_path):
    """A pyramidal slide of scikit-image's real IHC image (DAB + hematoxylin, no eosin) on glass:
    one island as imaged, one re-stained pale without DAB (a negative IHC slide), a marker line."""
    from skimage import data
    from skimage.color import hed2rgb, rgb2hed

    from rckd.data.wsi.tiff import write_pyramid

    h, w = 1536, 2048
    rng = np.random.default_rng(0)
    canvas = np.clip(rng.normal((242, 241, 239), 2, (h, w, 3)), 0, 255).astype(np.uint8)
    ihc = data.immunohistochemistry()
    hed = rgb2hed(ihc)
    pale = (np.clip(hed2rgb(np.stack([0.4 * hed[..., 0], 0 * hed[..., 1], 0 * hed[..., 2]], -1)), 0, 1) * 255)
    yy, xx = np.mgrid[:h, :w]
    islands = []
    for cx, tissue in ((520, ihc), (1530, pale.astype(np.uint8))):
        island = ((yy - 820) / 560) ** 2 + ((xx - cx) / 420) ** 2 <= 1
        canvas[island] = np.pad(tissue, ((0, h - 512), (0, w - 512), (0, 0)), mode="symmetric")[island]
        islands.append(island)
    canvas[60:110, 200:1800] = (35, 65, 185)  # a blue marker line across the top
    slide = write_pyramid(tmp_path / "ihc.tiff", canvas, mpp=0.5)
    code, run = _tile(tmp_path, slide, target_mpp=1.0, patch_size=128, save_images=True,
                      thumbnail_size=256)  # 4 um/px: coarse, as thumbnails of whole slides are
    coords, attrs, imgs = _h5(run, "ihc")
    state = read_json(run / "state" / "ihc.json")
    assert code == 0 and state["status"] == "done" and attrs["read_level"] == 1
    assert state["tissue_fraction"] == pytest.approx((islands[0] | islands[1]).mean(), abs=0.04)
    centres = coords + 128  # footprint 256 level-0 px
    for island in islands:
        assert island[centres[:, 1], centres[:, 0]].sum() >= 8  # both islands tiled
    assert (coords[:, 1] > 110).all()  # not the marker line
