"""rckd tile end to end on small synthetic slides: outputs, resume, errors, no tissue, shards."""

from __future__ import annotations

import dataclasses
import logging

import h5py
import numpy as np
import pytest
from PIL import Image

from rckd.cli import main
from rckd.data.wsi import h5format, pipeline
from rckd.data.wsi.pipeline import TileConfig, run_tiling
from rckd.io import read_json


def _cfg(tmp_path, slides, **kw) -> TileConfig:
    base = dict(slides=[str(s) for s in slides], out=str(tmp_path / "out"), patch_size=128,
                thumbnail_size=512, progress=False)
    base.update(kw)
    return TileConfig(**base)


def _run_dir(cfg):
    return tmp_dir(cfg) / pipeline.run_dir_name(cfg)


def tmp_dir(cfg):
    from pathlib import Path
    return Path(cfg.out)


def _read(path):
    with h5py.File(path) as f:
        return f["coords"][()], (f["imgs"][()] if "imgs" in f else None), dict(f["coords"].attrs)


def test_outputs_and_attributes(tmp_path, slides):
    cfg = _cfg(tmp_path, [slides["tissue"]], save_images=True, overlap=16)
    assert run_tiling(cfg) == 0
    run = _run_dir(cfg)
    assert run.name == "0.50mpp_128px_16px"
    coords, imgs, attrs = _read(run / "patches" / "tissue.h5")
    state = read_json(run / "state" / "tissue.json")
    assert state["status"] == "done" and state["n_tiles"] == len(coords) > 10
    assert imgs.shape == (len(coords), 128, 128, 3)
    assert len(np.unique(coords, axis=0)) == len(coords)
    assert attrs["target_mpp"] == 0.5 and attrs["level0_mpp"] == 0.5 and attrs["patch_size_level0"] == 128
    assert attrs["slide_fingerprint"] == state["fingerprint"]
    assert ((coords[:, 0] % 112) == 0).all()  # stride (128 - 16) level-0 px at equal mpp
    thumb = Image.open(run / "thumbnails" / "tissue.jpg")
    assert max(thumb.size) <= 1024
    assert "| tissue | done |" in (run / "summary.md").read_text()


def test_resume_after_crash_redoes_half_done(tmp_path, slides, monkeypatch):
    both = [slides["tissue"], slides["tissue2"]]  # sorted: "other" first, then "tissue"
    ref = _cfg(tmp_path / "ref", both, save_images=True)
    run_tiling(ref)
    ref_coords, ref_imgs, _ = _read(_run_dir(ref) / "patches" / "tissue.h5")

    cfg = _cfg(tmp_path, both, save_images=True)
    real_write = h5format.write_tile_set

    def crash_on_tissue(path, *a, **kw):
        if path.name == "tissue.h5":
            next(iter(kw["chunks"]))  # a chunk was produced, then the machine died
            raise KeyboardInterrupt
        return real_write(path, *a, **kw)

    monkeypatch.setattr(h5format, "write_tile_set", crash_on_tissue)
    with pytest.raises(KeyboardInterrupt):
        run_tiling(cfg)
    run = _run_dir(cfg)
    assert read_json(run / "state" / "tissue.json")["status"] == "running"
    assert sorted(p.name for p in (run / "patches").iterdir()) == ["other.h5"]  # atomic: no partial file
    (run / "patches" / "tissue.h5").write_bytes(b"half-written junk")  # even a stray partial file
    mtime = (run / "patches" / "other.h5").stat().st_mtime_ns

    monkeypatch.setattr(h5format, "write_tile_set", real_write)
    assert run_tiling(cfg) == 0
    assert (run / "patches" / "other.h5").stat().st_mtime_ns == mtime  # finished slide kept
    coords, imgs, _ = _read(run / "patches" / "tissue.h5")
    assert (coords == ref_coords).all() and (imgs == ref_imgs).all()  # no loss, no duplicates
    assert read_json(run / "state" / "tissue.json")["status"] == "done"


def test_finished_output_is_verified(tmp_path, slides):
    cfg = _cfg(tmp_path, [slides["tissue"]])
    run_tiling(cfg)
    h5 = _run_dir(cfg) / "patches" / "tissue.h5"
    coords, _, attrs = _read(h5)
    h5format.write_tile_set(h5, coords[:-3], attrs)  # tampered: fewer tiles than the state says
    run_tiling(cfg)
    assert len(_read(h5)[0]) == len(coords)
    mtime = h5.stat().st_mtime_ns
    run_tiling(dataclasses.replace(cfg, overwrite=True))
    assert h5.stat().st_mtime_ns != mtime


def test_skip_errors(tmp_path, slides):
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"\x00" * 1000)
    cfg = _cfg(tmp_path, [slides["tissue"], bad])
    with pytest.raises(ValueError, match="broken.svs"):
        run_tiling(cfg)
    assert run_tiling(dataclasses.replace(cfg, skip_errors=True)) == 1
    run = _run_dir(cfg)
    assert read_json(run / "state" / "broken.json")["status"] == "failed"
    assert read_json(run / "state" / "tissue.json")["status"] == "done"
    summary = (run / "summary.md").read_text()
    assert "| broken | failed |" in summary and "broken.svs" in summary


def test_missing_mpp_message_then_given(tmp_path, slides, capsys):
    args = ["tile", str(slides["nompp"]), "--out", str(tmp_path / "o"), "--patch-size", "128",
            "--no-progress"]
    try:
        assert main(args) == 2
    finally:
        logging.getLogger().handlers.clear()  # main() logs to the captured stream of this test
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "nompp.tiff" in err and "--mpp" in err
    try:
        assert main(args + ["--mpp", "0.5"]) == 0
    finally:
        logging.getLogger().handlers.clear()
    assert (tmp_path / "o" / "0.50mpp_128px_0px" / "patches" / "nompp.h5").exists()
    (tmp_path / "l.csv").write_text(f"path,mpp\n{slides['nompp']},0.5\n")
    cfg = _cfg(tmp_path, [tmp_path / "l.csv"])
    assert run_tiling(cfg) == 0


def test_given_mpp_only_matters_where_used(tmp_path, slides):
    cfg = _cfg(tmp_path, [slides["tissue"], slides["nompp"]], mpp=0.5)
    run_tiling(cfg)
    h5 = _run_dir(cfg) / "patches" / "tissue.h5"
    mtime = h5.stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"'nompp' was made with --mpp 0\.5, this run has --mpp 0\.4"):
        run_tiling(dataclasses.replace(cfg, mpp=0.4))  # nompp's tiles were cut at 0.5: never replaced silently
    run_tiling(dataclasses.replace(cfg, slides=[str(slides["tissue"])], mpp=0.4))  # the file states 0.5
    assert h5.stat().st_mtime_ns == mtime
    run_tiling(dataclasses.replace(cfg, mpp=0.4, overwrite=True))
    assert _read(_run_dir(cfg) / "patches" / "nompp.h5")[2]["level0_mpp"] == 0.4
    with pytest.raises(ValueError, match="'tissue' was made with the file's level-0 mpp 0.5, this run forces"):
        run_tiling(dataclasses.replace(cfg, mpp=0.4, force_mpp=True))
    run_tiling(dataclasses.replace(cfg, mpp=0.4, force_mpp=True, overwrite=True))
    assert _read(h5)[2]["level0_mpp"] == 0.4


def test_rerun_with_other_settings_keeps_the_finished_tile_set(tmp_path, slides, capsys):
    cfg = _cfg(tmp_path, [slides["tissue"]], save_images=True)
    run_tiling(cfg)
    h5 = _run_dir(cfg) / "patches" / "tissue.h5"
    coords, imgs, _ = _read(h5)
    for change, says in (({"min_tissue": 0.3}, "--min-tissue 0.5, this run has --min-tissue 0.3"),
                         ({"save_images": False}, "--save-images, this run has --no-save-images"),
                         ({"tissue_detection": False}, "--tissue-detection, this run has --no-tissue-detection")):
        with pytest.raises(ValueError, match=says):
            run_tiling(dataclasses.replace(cfg, **change))
    args = ["tile", str(slides["tissue"]), "--out", cfg.out, "--patch-size", "128", "--thumbnail-size", "512",
            "--min-tissue", "0.3", "--save-images", "--no-progress"]
    try:
        assert main(args) == 2
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-tissue 0.5" in err[0] and "--overwrite" in err[0]
    again, again_imgs, _ = _read(h5)
    assert (again == coords).all() and (again_imgs == imgs).all()  # nothing lost
    run_tiling(dataclasses.replace(cfg, min_tissue=0.3, overwrite=True))
    assert len(_read(h5)[0]) > len(coords)


def test_zero_slides_is_an_error(tmp_path, capsys):
    (tmp_path / "looks_like.svs").mkdir()
    (tmp_path / "empty.csv").write_text("path,mpp\n")
    for given, says in (("looks_like.svs", "a folder without slide files"), ("empty.csv", "lists no slides")):
        try:
            assert main(["tile", str(tmp_path / given), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        finally:
            logging.getLogger().handlers.clear()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and given in err[0] and says in err[0]
    assert not (tmp_path / "o").exists()


def test_killed_run_leftovers_are_removed(tmp_path, slides):
    cfg = _cfg(tmp_path, [slides["tissue"]], save_images=True)
    run = _run_dir(cfg)
    left = [run / "patches" / ".tissue.h5.0badc0de.h5.tmp", run / "state" / ".tissue.json.a1b2c3d4.json.tmp",
            run / "thumbnails" / ".tissue.jpg.99ff99ff.jpg.tmp"]
    others = [run / "patches" / ".other.h5.0badc0de.h5.tmp", run / "patches" / "notes.tmp"]
    for p in left + others:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 1000)
    assert run_tiling(cfg) == 0
    assert not any(p.exists() for p in left) and all(p.exists() for p in others)  # only this slide's


def test_no_tissue_slide_reported_not_empty_file(tmp_path, slides):
    cfg = _cfg(tmp_path, [slides["blank"]])
    assert run_tiling(cfg) == 0
    run = _run_dir(cfg)
    assert not (run / "patches" / "blank.h5").exists()
    assert read_json(run / "state" / "blank.json")["status"] == "no_tissue"
    assert "no tissue found" in (run / "summary.md").read_text()
    assert (run / "thumbnails" / "blank.jpg").exists()


def test_plain_image_input(tmp_path, slides):
    img = np.full((300, 500, 3), 240, np.uint8)
    img[50:250, 100:400] = (180, 90, 150)
    Image.fromarray(img).save(tmp_path / "field.png")
    cfg = _cfg(tmp_path, [tmp_path / "field.png"], mpp=0.5, patch_size=64, min_tissue=0.9)
    assert run_tiling(cfg) == 0
    coords, _, attrs = _read(_run_dir(cfg) / "patches" / "field.h5")
    assert attrs["level0_mpp"] == 0.5 and len(coords) > 0
    assert coords[:, 0].min() >= 100 - 64 and coords[:, 0].max() + 64 <= 400 + 64
    every = _cfg(tmp_path / "all", [tmp_path / "field.png"], mpp=0.5, patch_size=64, tissue_detection=False)
    run_tiling(every)
    assert len(_read(_run_dir(every) / "patches" / "field.h5")[0]) == (300 // 64) * (500 // 64)


def test_workers_and_shards_match_serial(tmp_path, slides, monkeypatch):
    monkeypatch.setattr(pipeline, "MIN_PARALLEL_TILES", 0)  # use the pool even for this small slide
    serial = _cfg(tmp_path / "a", [slides["tissue"]], save_images=True)
    run_tiling(serial)
    par = _cfg(tmp_path / "b", [slides["tissue"]], save_images=True, workers=2)
    run_tiling(par)
    (c1, i1, _), (c2, i2, _) = (_read(_run_dir(c) / "patches" / "tissue.h5") for c in (serial, par))
    assert (c1 == c2).all() and (i1 == i2).all()
    two = [slides["tissue"], slides["tissue2"], slides["blank"]]
    for i in range(2):
        run_tiling(_cfg(tmp_path / "c", two, shard=f"{i}/2", workers=2))
    states = sorted(p.name for p in (_run_dir(_cfg(tmp_path / "c", two)) / "state").iterdir())
    assert states == ["blank.json", "other.json", "tissue.json"]


def test_unreadable_tiles_are_left_out_and_recorded(tmp_path, slides, monkeypatch):
    from rckd.data.wsi.reader import OpenSlideReader
    real = OpenSlideReader.read_region

    def flaky(self, location, level, size, out=None):
        if level == 0 and location[0] + size[0] > 640 and location[0] < 768:  # a corrupt column
            raise OSError("Corrupt JPEG data")
        return real(self, location, level, size, out)

    monkeypatch.setattr(OpenSlideReader, "read_region", flaky)
    cfg = _cfg(tmp_path, [slides["tissue"]], save_images=True, min_tissue=0.0, tissue_detection=False)
    assert run_tiling(cfg) == 0
    coords, imgs, _ = _read(_run_dir(cfg) / "patches" / "tissue.h5")
    state = read_json(_run_dir(cfg) / "state" / "tissue.json")
    assert sorted({f["x"] for f in state["failed_tiles"]}) == [640]
    assert len(state["failed_tiles"]) == 8 and "Corrupt JPEG" in state["failed_tiles"][0]["error"]
    assert len(coords) == state["n_tiles"] == 12 * 8 - 8 and 640 not in coords[:, 0]
    assert len(np.unique(coords, axis=0)) == len(coords) and len(imgs) == len(coords)
    assert "8 unreadable tiles skipped" in (_run_dir(cfg) / "summary.md").read_text()
