"""Synthetic pyramidal slides: OpenSlide reads levels, mpp, size; tissue vs glass."""

import numpy as np
import openslide
import pytest

from rckd.data.synthetic import GLASS, write_synthetic_slide


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("slides") / "synthetic.tif"
    return write_synthetic_slide(path, 2100, 1500, mpp=0.25, seed=3, tile_size=256)


def _tissue_fraction(rgb: np.ndarray) -> float:
    diff = np.abs(rgb.astype(int) - np.array(GLASS)).max(-1)
    return float((diff > 25).mean())


def test_openslide_reads_levels_and_mpp(slide_path):
    with openslide.OpenSlide(str(slide_path)) as s:
        assert s.dimensions == (2100, 1500)
        # halvings until the smallest level fits in one 256 tile: 2100 -> ... -> 262 -> 131
        assert s.level_count == 5
        assert s.level_dimensions[1] == (1050, 750)
        assert s.level_dimensions[-1] == (131, 93)
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.25, rel=1e-4)
        assert float(s.properties["openslide.mpp-y"]) == pytest.approx(0.25, rel=1e-4)
        assert s.properties["tiff.ResolutionUnit"] == "centimeter"
        thumb = np.asarray(s.get_thumbnail((400, 400)).convert("RGB"))
    frac = _tissue_fraction(thumb)
    assert 0.05 < frac < 0.95, frac


def test_levels_are_consistent_downsamples(slide_path):
    with openslide.OpenSlide(str(slide_path)) as s:
        full = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"), float)
        lvl2 = np.asarray(s.read_region((0, 0), 2, s.level_dimensions[2]).convert("RGB"), float)
    h, w = lvl2.shape[:2]
    pooled = full[:h * 4, :w * 4].reshape(h, 4, w, 4, 3).mean((1, 3))
    assert np.abs(pooled - lvl2).mean() < 6.0


def test_explicit_levels_no_mpp_and_no_tissue(tmp_path):
    path = write_synthetic_slide(tmp_path / "glass.tiff", 700, 500, mpp=None, tile_size=128,
                                 n_levels=2, compression="zlib", tissue=False)
    with openslide.OpenSlide(str(path)) as s:
        assert s.level_count == 2
        assert s.level_dimensions == ((700, 500), (350, 250))
        assert "openslide.mpp-x" not in s.properties
        rgb = np.asarray(s.read_region((0, 0), 0, (700, 500)).convert("RGB"))
    assert np.array_equal(np.unique(rgb.reshape(-1, 3), axis=0), np.array([GLASS]))
    assert not list(tmp_path.glob(".*tmp"))          # atomic write left no temporary file


def test_same_seed_same_pixels(tmp_path):
    a = write_synthetic_slide(tmp_path / "a.tif", 600, 400, seed=1, compression=None)
    b = write_synthetic_slide(tmp_path / "b.tif", 600, 400, seed=1, compression=None)
    c = write_synthetic_slide(tmp_path / "c.tif", 600, 400, seed=2, compression=None)
    read = [np.asarray(openslide.OpenSlide(str(p)).read_region((0, 0), 0, (600, 400)))
            for p in (a, b, c)]
    assert np.array_equal(read[0], read[1])
    assert not np.array_equal(read[0], read[2])


@pytest.mark.parametrize("kwargs", [dict(width=0, height=10), dict(width=10, height=10, mpp=-1),
                                    dict(width=10, height=10, tile_size=100),
                                    dict(width=64, height=32, n_levels=8)])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        write_synthetic_slide(tmp_path / "bad.tif", **kwargs)
    assert not (tmp_path / "bad.tif").exists()
