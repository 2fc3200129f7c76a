"""Grid geometry by mpp: read level, footprints, edge tiles, tissue fractions."""

from __future__ import annotations

import numpy as np
import pytest

from rckd.data.wsi.grid import grid_coords, plan_geometry, select_tiles, tissue_fraction


def test_read_level_is_coarsest_not_coarser_than_target():
    g = plan_geometry(0.25, 0.5, 256, 0, (1.0, 2.0, 4.0))
    assert (g.read_level, g.read_size, g.patch_size_level0, g.stride_level0) == (1, 256, 512, 512.0)
    g = plan_geometry(0.25, 0.5, 256, 0, (1.0, 4.0))  # level 1 is 1.0 mpp: too coarse
    assert (g.read_level, g.read_size, g.patch_size_level0) == (0, 512, 512)
    g = plan_geometry(0.5, 0.25, 256, 0, (1.0, 2.0))  # finer than level 0: read and upsample
    assert (g.read_level, g.read_size, g.patch_size_level0) == (0, 128, 128)


def test_exact_mpp_not_binned():
    g = plan_geometry(0.499, 0.5, 256, 0, (1.0, 2.0005))
    assert g.read_level == 0 and g.patch_size_level0 == 257 and g.read_size == 257
    assert g.stride_level0 == pytest.approx(256 * 0.5 / 0.499)
    g = plan_geometry(0.2282, 0.5, 224, 0, (1, 2, 4, 8))
    assert g.read_level == 1 and g.patch_size_level0 == 491
    assert g.read_size == 246  # round(491 / 2): the level-0 footprint at level 1, as TRIDENT reads it


def test_grid_includes_edge_tile_and_no_partial_tiles():
    g = plan_geometry(0.5, 0.5, 256)
    xs = np.unique(grid_coords(1024, 300, g)[:, 0])
    assert xs.tolist() == [0, 256, 512, 768]  # 768 + 256 == 1024: the edge tile is inside
    assert np.unique(grid_coords(1023, 300, g)[:, 0]).tolist() == [0, 256, 512]
    assert len(grid_coords(255, 1000, g)) == 0


def test_grid_overlap_row_major_and_unique():
    g = plan_geometry(0.5, 1.0, 128, 32, (1.0,))  # footprint 256, stride 192 level-0 px
    c = grid_coords(1000, 700, g)
    assert c.dtype == np.int64 and c.shape[1] == 2
    xs, ys = np.unique(c[:, 0]), np.unique(c[:, 1])
    assert xs.tolist() == [0, 192, 384, 576] and ys.tolist() == [0, 192, 384]
    assert len(np.unique(c, axis=0)) == len(c) == 12
    order = np.lexsort((c[:, 0], c[:, 1]))
    assert (order == np.arange(len(c))).all()


def test_bad_geometry_rejected():
    with pytest.raises(ValueError):
        plan_geometry(0.5, 0.5, 256, 256)
    with pytest.raises(ValueError):
        plan_geometry(0.0, 0.5, 256)


def test_tissue_fraction_is_area_exact():
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True  # left half of a 1000 x 1000 slide
    coords = np.array([[0, 0], [250, 0], [500, 0], [480, 100]])
    frac = tissue_fraction(mask, (1000, 1000), coords, 500)
    assert frac == pytest.approx([1.0, 0.5, 0.0, 0.04])
    small = np.zeros((4, 4), bool)
    small[:, 0] = True  # 25 level-0 px per mask pixel
    assert tissue_fraction(small, (100, 100), np.array([[10, 0]]), 30)[0] == pytest.approx(0.5)


def test_select_tiles_threshold():
    coords = np.arange(8).reshape(4, 2)
    frac = np.array([0.0, 0.2, 0.5, 1.0])
    assert len(select_tiles(coords, frac, 0.5)) == 2
    assert len(select_tiles(coords, frac, 0.0)) == 3  # 0 keeps tiles touching tissue
