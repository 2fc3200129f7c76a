"""The h5 layout: CLAM + TRIDENT + rckd attributes, atomic writes, chunked pixels, reading peers' files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from rckd.data.wsi import h5format
from rckd.data.wsi.extract import ExtractJob, local_chunks
from rckd.data.wsi.grid import plan_geometry

CLAM_NAMES = ("patch_size", "patch_level", "downsample", "level_dim", "downsampled_level_dim", "name")
TRIDENT_NAMES = ("patch_size", "patch_size_level0", "level0_width", "level0_height", "overlap",
                 "target_magnification", "level0_magnification")
OUR_NAMES = ("target_mpp", "level0_mpp", "read_level", "read_size", "tissue_method", "tissue_params",
             "slide_path", "slide_size", "slide_fingerprint", "rckd_version", "schema_version")


def _attrs(geom):
    return h5format.tile_set_attrs(geom, name="s1", slide_path="/x/s1.svs", slide_size=(4000, 3000),
                                   fingerprint="f", level_dimensions=((4000, 3000), (2000, 1500)),
                                   tissue_info={"method": "auto", "threshold": 20.0}, min_tissue=0.5,
                                   objective_power=40)


def test_attributes_carry_all_three_vocabularies(tmp_path):
    geom = plan_geometry(0.25, 0.5, 256, 16, (1.0, 2.0))
    coords = np.array([[0, 0], [480, 0]], np.int64)
    path = h5format.write_tile_set(tmp_path / "s1.h5", coords, _attrs(geom))
    with h5py.File(path) as f:
        a = f["coords"].attrs
        for key in CLAM_NAMES + TRIDENT_NAMES + OUR_NAMES:
            assert key in a, key
        assert f["coords"].dtype == np.int64 and f["coords"].shape == (2, 2)
        assert a["patch_size"] == 256 and a["patch_level"] == 1 and a["read_size"] == 256
        assert a["patch_size_level0"] == 512 and a["overlap"] == 16 and a["level0_width"] == 4000
        assert list(a["downsample"]) == [2.0, 2.0] and list(a["level_dim"]) == [2000, 1500]
        assert a["target_magnification"] == pytest.approx(20.0)
        assert json.loads(a["tissue_params"])["threshold"] == 20.0
    info = h5format.read_tile_set(path)
    assert info.format == "rckd" and info.target_mpp == 0.5 and info.level0_mpp == 0.25
    assert info.patch_size_level0 == 512 and not info.has_images and (info.coords == coords).all()
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left


@pytest.mark.parametrize("compression,noise", [("gzip", 255), ("lzf", 255), ("lzf", 2), ("none", 255)])
def test_images_roundtrip_through_direct_chunks(tmp_path, compression, noise):
    rng = np.random.default_rng(0)
    image = ((0 if noise == 255 else 200) + rng.integers(0, noise, (64, 64, 3))).astype(np.uint8)
    from PIL import Image
    Image.fromarray(image).save(tmp_path / "img.png")
    geom = plan_geometry(0.5, 0.5, 16)
    coords = np.array([[x, y] for y in (0, 16, 32) for x in (0, 16, 32)], np.int64)  # 9 tiles
    job = ExtractJob(str(tmp_path / "img.png"), 0.5, geom, 0, coords, 4, compression, fast=False)
    seen = []  # (chunk index, stored bytes, filter mask, failures) as the writer gets them

    def chunks():
        for index, data, mask, failures in local_chunks([job]):
            seen.append((index, memoryview(data).nbytes, mask, failures))
            yield index, data, mask

    path = h5format.write_tile_set(tmp_path / "t.h5", coords, {"patch_size": 16}, chunks=chunks(),
                                   image_size=16, chunk_tiles=4, compression=compression)
    assert [c[0] for c in seen] == [0, 1, 2] and all(c[3] == [] for c in seen)
    if compression == "lzf":  # noise does not compress: those chunks are stored raw (filter skipped)
        assert [c[2] for c in seen[:2]] == ([1, 1] if noise == 255 else [0, 0])
        assert (seen[0][1] == 4 * 16 * 16 * 3) == (noise == 255)
    with h5py.File(path) as f:
        imgs = f["imgs"][()]
        assert imgs.shape == (9, 16, 16, 3) and f["imgs"].chunks == (4, 16, 16, 3)
    for (x, y), tile in zip(coords, imgs):
        assert (tile == image[y:y + 16, x:x + 16]).all()


def test_missing_chunks_leave_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="1 of 2"):
        h5format.write_tile_set(tmp_path / "t.h5", np.zeros((5, 2)), {"patch_size": 8},
                                chunks=[(0, bytes(4 * 8 * 8 * 3), 0)], image_size=8, chunk_tiles=4,
                                compression="none")
    assert not list(tmp_path.iterdir())


def test_reads_clam_and_trident_files(tmp_path):
    coords = np.array([[0, 0], [1024, 0]], np.int64)
    with h5py.File(tmp_path / "clam.h5", "w") as f:  # as CLAM's create_patches_fp.py writes it
        d = f.create_dataset("coords", data=coords)
        d.attrs.update({"patch_size": 512, "patch_level": 1, "downsample": np.array([2.0, 2.0]),
                        "level_dim": np.array([5000, 4000]), "downsampled_level_dim": np.array([5000, 4000]),
                        "name": "slideA", "save_path": "/somewhere"})
    clam = h5format.read_tile_set(tmp_path / "clam.h5")
    assert (clam.format, clam.patch_size, clam.read_level, clam.read_size, clam.patch_size_level0) == \
        ("clam", 512, 1, 512, 1024)
    assert clam.name == "slideA" and clam.target_mpp is None
    with h5py.File(tmp_path / "trident.h5", "w") as f:
        d = f.create_dataset("coords", data=coords)
        d.attrs.update({"patch_size": 256, "patch_size_level0": 512, "target_magnification": 20,
                        "level0_magnification": 40, "overlap": 0, "name": "slideB"})
    tri = h5format.read_tile_set(tmp_path / "trident.h5")
    assert (tri.format, tri.patch_size, tri.patch_size_level0, tri.read_level) == ("trident", 256, 512, 0)


def test_not_a_tile_set(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("features", data=np.zeros(3))
    with pytest.raises(ValueError, match="no 'coords'"):
        h5format.read_tile_set(tmp_path / "x.h5")
    (tmp_path / "y.h5").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="y.h5"):
        h5format.read_tile_set(tmp_path / "y.h5")


def test_drop_tiles_keeps_the_rest_in_order(tmp_path):
    coords = np.arange(14, dtype=np.int64).reshape(7, 2)
    imgs = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 4, 4, 3), np.uint8)
    padded = np.concatenate([imgs, np.zeros((1, 4, 4, 3), np.uint8)])
    chunks = [(i, *h5format.encode_chunk(padded[4 * i:4 * i + 4], "gzip")) for i in (0, 1)]
    path = h5format.write_tile_set(tmp_path / "t.h5", coords, {"patch_size": 4}, chunks=chunks,
                                   image_size=4, chunk_tiles=4)
    h5format.drop_tiles(path, [1, 5])
    with h5py.File(path) as f:
        assert f["coords"][:, 0].tolist() == [0, 4, 6, 8, 12]
        assert f["imgs"][:, 0, 0, 0].tolist() == [0, 2, 3, 4, 6]
        assert f["coords"].attrs["patch_size"] == 4
