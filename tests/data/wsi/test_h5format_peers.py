"""CLAM's and TRIDENT's readers, emulated from their documented semantics, cut rckd's tiles.

The slide is 0.3 um/px with levels at 0.6 and 1.2 um/px, so at both 0.5 and 1.0 um/px the level
rckd reads differs from the target. Each emulated reader's pixels are resized (box filter, as
rckd does) to rckd's tile size and must equal the stored pixels, which they do only when both
read the same level-0 footprint.
"""

from __future__ import annotations

import h5py
import numpy as np
import openslide
import pytest
from PIL import Image

from rckd.data.wsi.pipeline import TileConfig, run_dir_name, run_tiling

PATCH = 64


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    from rckd.data.synthetic import write_synthetic_slide

    return write_synthetic_slide(tmp_path_factory.mktemp("peers") / "s03.tiff", 1024, 768, mpp=0.3, seed=7)


def _tile(slide, out, target_mpp, **kw):
    cfg = TileConfig(slides=[str(slide)], out=str(out), target_mpp=target_mpp, patch_size=PATCH,
                     tissue_detection=False, save_images=True, progress=False, thumbnail_size=256, **kw)
    assert run_tiling(cfg) == 0
    path = next((out / run_dir_name(cfg) / "patches").glob("*.h5"))
    with h5py.File(path) as f:
        return path, f["coords"][()], f["imgs"][()], dict(f["coords"].attrs)


def clam_read(wsi, attrs, coord):
    """CLAM's Whole_Slide_Bag_FP: ``patch_size`` pixels at ``patch_level``; returns (image, level-0 side)."""
    level, size = int(attrs["patch_level"]), int(attrs["patch_size"])
    region = wsi.read_region((int(coord[0]), int(coord[1])), level, (size, size)).convert("RGB")
    return region, size * wsi.level_downsamples[level]


def trident_read(wsi, attrs, coord):
    """TRIDENT's patcher over given coordinates: ``patch_size`` px at ``target_magnification``.

    Magnification m means 10 / m um/px; the footprint is ``round(patch_size * downsample)``
    level-0 px, read from the level whose downsample is within 0.1 of it (else the finest level
    coarser than none of it) at ``round(footprint / int(level downsample))`` px.
    """
    downsample = (10 / attrs["target_magnification"]) / (10 / attrs["level0_magnification"])
    size0 = round(int(attrs["patch_size"]) * downsample)
    levels = wsi.level_downsamples
    near = [i for i, d in enumerate(levels) if abs(d - downsample) <= 0.1]
    level = near[0] if near else max(i for i, d in enumerate(levels) if d <= downsample)
    size = round(size0 / int(levels[level]))
    region = wsi.read_region((int(coord[0]), int(coord[1])), level, (size, size)).convert("RGB")
    return region, size * levels[level]


def _same_tiles(reader, wsi, coords, imgs, attrs):
    read = attrs["read_size"] * attrs["read_downsample"]  # rckd's own level-0 footprint
    for i in (0, len(coords) // 2, len(coords) - 1):
        region, side0 = reader(wsi, attrs, coords[i])
        assert abs(side0 - read) <= 1 and abs(side0 - attrs["patch_size_level0"]) <= 1
        got = np.asarray(region.resize((PATCH, PATCH), Image.Resampling.BOX))
        assert np.array_equal(got, imgs[i]), i


@pytest.mark.parametrize("target_mpp", [0.5, 1.0])
def test_trident_reads_rckd_tiles_out_of_the_box(slide, tmp_path, target_mpp):
    _, coords, imgs, attrs = _tile(slide, tmp_path, target_mpp)
    assert attrs["read_level"] == (0 if target_mpp == 0.5 else 1)  # 0.3 or 0.6 um/px: not the target
    assert attrs["level0_magnification"] == pytest.approx(10 / 0.3)
    assert attrs["target_magnification"] == pytest.approx(10 / target_mpp)
    with openslide.OpenSlide(str(slide)) as wsi:
        _same_tiles(trident_read, wsi, coords, imgs, attrs)
        _, clam_side = clam_read(wsi, attrs, coords[0])  # out of the box CLAM reads another area:
        assert abs(clam_side - attrs["patch_size_level0"]) > 10  # hence --clam-patch-size


@pytest.mark.parametrize("target_mpp", [0.5, 1.0])
def test_clam_patch_size_makes_both_readers_cut_rckd_tiles(slide, tmp_path, target_mpp):
    _, coords, imgs, attrs = _tile(slide, tmp_path, target_mpp, clam_patch_size=True)
    assert attrs["patch_size"] == attrs["read_size"] != attrs["target_patch_size"] == PATCH
    with openslide.OpenSlide(str(slide)) as wsi:
        _same_tiles(clam_read, wsi, coords, imgs, attrs)
        _same_tiles(trident_read, wsi, coords, imgs, attrs)


def test_trident_file_names(slide, tmp_path):
    path, *_ = _tile(slide, tmp_path, 0.5, trident_names=True)
    assert path.name == "s03_patches.h5"
    assert run_tiling(TileConfig(slides=[str(slide)], out=str(tmp_path), target_mpp=0.5, patch_size=PATCH,
                                 tissue_detection=False, save_images=True, progress=False,
                                 thumbnail_size=256, trident_names=True)) == 0  # finished: kept
    with pytest.raises(ValueError, match="--trident-names, this run has --no-trident-names"):
        run_tiling(TileConfig(slides=[str(slide)], out=str(tmp_path), target_mpp=0.5, patch_size=PATCH,
                              tissue_detection=False, save_images=True, progress=False, thumbnail_size=256))
