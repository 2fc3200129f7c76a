"""Windowed extraction equals one read per tile; unreadable regions are reported, not fatal."""

from __future__ import annotations

import numpy as np

from rckd.data.wsi.extract import read_tile, read_tiles
from rckd.data.wsi.grid import grid_coords, plan_geometry
from rckd.data.wsi.reader import ImageReader, open_slide
from tests.conftest import shared_path


def test_strips_equal_single_reads_on_cmu_level0():
    path = shared_path("wsi", "CMU-1-Small-Region.svs")
    plain = open_slide(path, fast=False)  # OpenSlide only
    fast = open_slide(path)
    assert fast._fast is not None and plain._fast is None
    geom = plan_geometry(0.499, 0.499, 200, 20)
    coords = grid_coords(*plain.dimensions, geom)[::3]
    naive = np.stack([read_tile(plain, x, y, geom) for x, y in coords])
    for reader in (fast, plain):
        tiles, failures = read_tiles(reader, coords, geom, max_block=700)
        assert failures == [] and (tiles == naive).all()


def test_pyramid_level_read_matches_openslide(slides):
    plain = open_slide(slides["tissue"], fast=False)
    fast = open_slide(slides["tissue"])
    geom = plan_geometry(0.5, 1.0, 128, 0, plain.level_downsamples)
    assert geom.read_level == 1 and geom.read_size == 128 and fast._fast.has(1)
    coords = grid_coords(*plain.dimensions, geom)
    naive = np.stack([read_tile(plain, x, y, geom) for x, y in coords])
    for reader in (fast, plain):
        tiles, _ = read_tiles(reader, coords, geom)
        assert (tiles == naive).all()
    region = (fast.read_region((3, 5), 1, (40, 30)), plain.read_region((3, 5), 1, (40, 30)))
    assert (region[0] == region[1]).all()  # sub-pixel offsets are left to OpenSlide


class _Flaky(ImageReader):
    """Fails on any read covering x in [100, 150) (a 'corrupt region')."""

    def read_region(self, location, level, size, out=None):
        x = location[0]
        if x < 150 and x + size[0] > 100:
            raise OSError("corrupt JPEG tile")
        return super().read_region(location, level, size, out)


def test_corrupt_region_is_recorded_not_fatal(tmp_path):
    from PIL import Image
    Image.fromarray(np.full((64, 256, 3), 77, np.uint8)).save(tmp_path / "a.png")
    reader = _Flaky(tmp_path / "a.png", mpp=0.5)
    geom = plan_geometry(0.5, 0.5, 32)
    coords = grid_coords(256, 64, geom)
    tiles, failures = read_tiles(reader, coords, geom)
    bad = sorted(i for i, _ in failures)
    assert [int(coords[i][0]) for i in bad] == [96, 128, 96, 128]
    good = np.setdiff1d(np.arange(len(coords)), bad)
    assert (tiles[good] == 77).all() and "corrupt JPEG" in failures[0][1]


def test_jobs_cover_every_tile_in_whole_chunks_largest_first():
    from rckd.data.wsi.extract import make_jobs
    geom = plan_geometry(0.5, 0.5, 32)
    coords = grid_coords(4096, 3200, geom)  # 128 x 100 tiles
    jobs = make_jobs("s.tiff", None, geom, coords, chunk_tiles=4, compression="none", workers=2)
    assert np.array_equal(np.concatenate([j.coords for j in jobs]), coords)
    assert all(j.start % 4 == 0 for j in jobs) and jobs[0].start == 0
    sizes = [len(j.coords) for j in jobs]
    assert sizes[0] == 2048 and sizes[-2] == 64 and sorted(sizes[:-1], reverse=True) == sizes[:-1]
