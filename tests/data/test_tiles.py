"""Tile datasets: stored pixels vs slide reads, CLAM and TRIDENT files, per-worker handles, image folders."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from rckd.data.tiles import H5TileDataset, ImageFolderTiles
from rckd.data.wsi.pipeline import TileConfig, run_dir_name, run_tiling


@pytest.fixture(scope="module")
def tile_runs(tmp_path_factory):
    from rckd.data.synthetic import write_synthetic_slide

    root = tmp_path_factory.mktemp("tiles")
    slide = write_synthetic_slide(root / "s.tiff", 1024, 768, mpp=0.5, seed=5)
    runs = {}
    for images in (True, False):
        cfg = TileConfig(slides=[str(slide)], out=str(root / f"out{int(images)}"), target_mpp=1.0,
                         patch_size=64, save_images=images, progress=False, thumbnail_size=256)
        run_tiling(cfg)
        runs[images] = root / f"out{int(images)}" / run_dir_name(cfg)
    return slide, runs


def test_stored_pixels_equal_slide_reads(tile_runs):
    _, runs = tile_runs
    stored, read = H5TileDataset(runs[True]), H5TileDataset(runs[False] / "patches")
    assert len(stored) == len(read) > 5 and stored.mpp == read.mpp == 1.0
    for i in (0, len(stored) - 1):
        a, b = stored[i], read[i]
        assert a["image"].dtype == torch.uint8 and a["image"].shape == (3, 64, 64)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["coord"], b["coord"])
    assert H5TileDataset(runs[True], size=32)[0]["image"].shape == (3, 32, 32)
    assert H5TileDataset(runs[True], size=32).mpp == 2.0


def test_handles_are_per_process(tile_runs):
    _, runs = tile_runs
    ds = H5TileDataset(runs[True])
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives
    assert clone._h5 == {} and torch.equal(clone[1]["image"], ds[1]["image"])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 64, 64)


def test_reads_clam_files_with_slide_root(tile_runs, tmp_path):
    slide, runs = tile_runs
    coords = np.array([[0, 0], [128, 256]], np.int64)
    with h5py.File(tmp_path / "s.h5", "w") as f:  # CLAM: 128 px at level 1 (ds 2) = 256 level-0 px
        d = f.create_dataset("coords", data=coords)
        d.attrs.update({"patch_size": 128, "patch_level": 1, "downsample": np.array([2.0, 2.0]),
                        "level_dim": np.array([512, 384]), "downsampled_level_dim": np.array([512, 384]),
                        "name": "s", "save_path": "x"})
    with pytest.raises(FileNotFoundError, match="slide_root"):
        H5TileDataset(tmp_path / "s.h5")
    ds = H5TileDataset(tmp_path / "s.h5", slide_root=slide.parent, size=64)
    assert len(ds) == 2 and ds.mpp == pytest.approx(2.0)
    import openslide
    raw = openslide.OpenSlide(str(slide)).read_region((128, 256), 1, (128, 128)).convert("RGB")
    expected = np.asarray(raw.resize((64, 64), Image.Resampling.BOX))
    assert np.array_equal(ds[1]["image"].permute(1, 2, 0).numpy(), expected)


def test_reads_trident_files_by_name_and_slides_without_mpp(tmp_path):
    from rckd.data.synthetic import write_synthetic_slide

    slide = write_synthetic_slide(tmp_path / "slides" / "nompp.tiff", 1024, 768, mpp=None, seed=6)
    attrs = {"patch_size": 64, "patch_size_level0": 256, "level0_magnification": 20.0,  # as TRIDENT writes
             "target_magnification": 5.0, "overlap": 0, "name": "nompp", "savetodir": "x"}
    path = tmp_path / "nompp_patches.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("coords", data=np.array([[0, 0], [256, 512]], np.int64)).attrs.update(attrs)
    assert np.isnan(H5TileDataset(path, slide_root=slide.parent).mpp)  # the slide states no mpp
    ds = H5TileDataset(path, slide_root=slide.parent, slide_mpp=0.5)
    assert len(ds) == 2 and ds.mpp == 2.0
    import openslide
    raw = openslide.OpenSlide(str(slide)).read_region((256, 512), 2, (64, 64)).convert("RGB")  # 256 px / 4
    assert np.array_equal(ds[1]["image"].permute(1, 2, 0).numpy(), np.asarray(raw))
    with h5py.File(path, "a") as f:  # without a name attribute the file stem, less "_patches", finds it
        del f["coords"].attrs["name"]
    assert H5TileDataset(path, slide_root=slide.parent, slide_mpp=0.5)._slide_path(0) == slide
    with pytest.raises(FileNotFoundError, match="'nompp_patches' or 'nompp'.* not found in"):
        H5TileDataset(path, slide_root=tmp_path, slide_mpp=0.5)


def test_image_folder_tiles(tmp_path):
    for cls, value in (("benign", 50), ("tumour", 200)):
        (tmp_path / cls).mkdir()
        for k in range(2):
            Image.fromarray(np.full((100, 120, 3), value + k, np.uint8)).save(tmp_path / cls / f"{k}.png")
    ds = ImageFolderTiles(tmp_path, size=32, mpp=0.5)
    assert ds.classes == ("benign", "tumour") and len(ds) == 4 and ds.mpp == 0.5
    s = ds[3]
    assert s["label"] == 1 and s["image"].shape == (3, 32, 32) and int(s["image"][0, 0, 0]) == 201
    with pytest.raises(FileNotFoundError):
        ImageFolderTiles(tmp_path / "none", 32, 0.5)
