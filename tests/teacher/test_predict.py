"""rckd teacher predict: uint8 response caches for image folders and tile sets, resumable, panel."""

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from rckd.config import from_dict
from rckd.models.teachers.classical import ClassicalTeacher
from rckd.teacher.predict import PredictConfig, predict_dataset, predict_responses


def _folder(root, n=3, size=48):
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((size, size, 3), 235, np.uint8)
        img[10:20, 10 + 5 * i:20 + 5 * i] = (60, 40, 120)  # a hematoxylin-dark blob
        img = np.clip(img.astype(int) + rng.integers(-5, 5, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"t{i}.png")
    return root


def test_image_folder_cache_and_panel(tmp_path):
    folder = _folder(tmp_path / "imgs")
    cfg = from_dict(PredictConfig, {"inputs": [str(folder)], "out": str(tmp_path / "out"), "teacher": "classical",
                                    "mpp": 0.5, "size": 48, "batch_size": 2, "panel": 2})
    assert predict_responses(cfg) == 0
    with h5py.File(tmp_path / "out" / "imgs.h5", "r") as h:
        r = h["responses"][:]
        assert r.dtype == np.uint8 and r.shape == (3, 48, 48)
        assert h.attrs["done"] == 3 and h.attrs["teacher"] == "classical"
        assert [n.decode() for n in h["names"][:]] == ["t0.png", "t1.png", "t2.png"]
    assert r[0, 12:18, 12:18].mean() > 200 and r[0, 30:, 30:].mean() < 30  # the blob, not the background
    panel = np.asarray(Image.open(tmp_path / "out" / "imgs_panel.png"))
    assert panel.shape[0] >= 2 * 48 and panel.shape[1] >= 3 * 48
    with pytest.raises(ValueError, match="--mpp and --size"):
        predict_responses(from_dict(PredictConfig, {"inputs": [str(folder)], "out": str(tmp_path / "o2")}))


def test_resume_continues_where_it_stopped(tmp_path):
    from rckd.data.tiles import ImageFolderTiles
    ds = ImageFolderTiles(_folder(tmp_path / "imgs", n=4), 48, 0.5)
    t = ClassicalTeacher()
    calls = []
    real = t.response
    t.response = lambda images, mpp: (calls.append(len(images)), real(images, mpp))[1]
    path = tmp_path / "c.h5"
    attrs = {"teacher": "classical", "teacher_sha256": "", "teacher_mpp": 0.25}
    partial = path.with_name("c.h5.partial")
    with h5py.File(partial, "w") as h:  # an interrupted run: two rows done
        h.create_dataset("responses", data=np.full((4, 48, 48), 7, np.uint8))
        h.attrs.update({**attrs, "done": 2})
    predict_dataset(t, ds, path, attrs, batch_size=1)
    assert calls == [1, 1] and path.is_file() and not partial.exists()
    with h5py.File(path, "r") as h:
        r = h["responses"][:]
    assert (r[:2] == 7).all()
    ref = (real(torch.stack([ds[2]["image"]]), 0.5)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(r[2], ref)
    path.unlink()
    with h5py.File(partial, "w") as h:  # interrupted with another test-time augmentation: start over
        h.create_dataset("responses", data=np.full((4, 48, 48), 7, np.uint8))
        h.attrs.update({**attrs, "done": 2})
    calls.clear()
    predict_dataset(t, ds, path, {**attrs, "teacher_tta": 8}, batch_size=1)
    assert calls == [1, 1, 1, 1]


def test_tile_set_input(tmp_path):
    pytest.importorskip("rckd.data.wsi.h5format")
    from rckd.data.synthetic import write_synthetic_slide
    from rckd.data.wsi.pipeline import TileConfig, run_tiling
    slide = write_synthetic_slide(tmp_path / "s.tiff", 1024, 1024, mpp=0.5, seed=0)
    run_tiling(from_dict(TileConfig, {"slides": [str(slide)], "out": str(tmp_path / "tiles"), "target_mpp": 0.5,
                                       "patch_size": 128, "save_images": True, "workers": 1}))
    h5s = sorted((tmp_path / "tiles").rglob("*.h5"))
    assert h5s
    cfg = from_dict(PredictConfig, {"inputs": [str(h5s[0])], "out": str(tmp_path / "out"), "teacher": "classical",
                                    "panel": 2})
    assert predict_responses(cfg) == 0
    with h5py.File(tmp_path / "out" / f"{h5s[0].stem}.h5", "r") as h, h5py.File(h5s[0], "r") as src:
        assert h["responses"].shape[0] == src["coords"].shape[0]
        assert np.array_equal(h["coords"][:], src["coords"][:])


def test_trident_tile_set_of_a_slide_without_mpp(tmp_path):
    from rckd.data.synthetic import write_synthetic_slide
    slide = write_synthetic_slide(tmp_path / "slides" / "s.tiff", 512, 512, mpp=None, seed=1)
    tiles = tmp_path / "patches" / "s_patches.h5"  # TRIDENT's name and attributes; no mpp anywhere
    tiles.parent.mkdir()
    with h5py.File(tiles, "w") as f:
        f.create_dataset("coords", data=np.array([[0, 0], [128, 128]], np.int64)).attrs.update(
            {"patch_size": 64, "patch_size_level0": 128, "level0_magnification": 20.0,
             "target_magnification": 10.0, "overlap": 0, "name": "s"})
    cfg = {"inputs": [str(tiles.parent)], "out": str(tmp_path / "out"), "teacher": "classical", "panel": 0,
           "slide_root": str(slide.parent)}
    with pytest.raises(ValueError, match="need --mpp"):
        predict_responses(from_dict(PredictConfig, cfg))
    assert predict_responses(from_dict(PredictConfig, {**cfg, "mpp": 0.5})) == 0
    with h5py.File(tmp_path / "out" / "s_patches.h5", "r") as h:
        assert h["responses"].shape == (2, 64, 64) and h.attrs["mpp"] == 1.0
