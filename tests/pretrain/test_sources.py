"""Pool sources: slides, images and labelled train splits; val/test images never enter a pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from rckd.data.datasets import get_dataset
from rckd.pretrain.sources import pool_manifest, resolve_sources
from tests.conftest import shared_path

GRID = Path(__file__).resolve().parents[2] / "experiments" / "real_cpu.yaml"


def _lymphoma_tree(root: Path, per_class: int = 10) -> Path:
    for c, folder in enumerate(("CLL", "FL", "MCL")):
        for i in range(per_class):
            p = root / "lymphoma" / folder / f"{c}{i:02d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 30, 3), 40 * c, np.uint8)).save(p)
    return root


def test_train_split_enters_other_splits_are_refused(tmp_path):
    root = _lymphoma_tree(tmp_path)
    rows = resolve_sources([{"dataset": "lymphoma", "root": "lymphoma", "split": "train"}], root)
    train = {it.path.resolve() for it in get_dataset("lymphoma", str(root / "lymphoma"), "train").items}
    assert {r.path for r in rows} == train and len(rows) == 18
    assert all(r.source == "lymphoma:train" and r.mpp == pytest.approx(0.5 * 1388 / 30) for r in rows)
    for split in ("val", "test", "all"):
        with pytest.raises(ValueError, match=f"split '{split}' of lymphoma cannot enter the pool"):
            resolve_sources([{"dataset": "lymphoma", "root": "lymphoma", "split": split}], root)


def test_globs_mpp_and_errors(tmp_path):
    root = _lymphoma_tree(tmp_path, per_class=2)
    rows = resolve_sources([{"path": "lymphoma/CLL/*.png", "mpp": 0.25},
                            {"path": "lymphoma/CLL/000.png"}], root)  # listed twice: kept once
    assert [r.path.name for r in rows] == ["000.png", "001.png"] and {r.mpp for r in rows} == {0.25}
    with pytest.raises(FileNotFoundError, match=r"nothing\*.svs: pool slide\(s\) not found \(pool.sources\[0\]\)"):
        resolve_sources([{"path": "nothing*.svs"}], root)
    with pytest.raises(ValueError, match=r"pool.sources\[0\]: a pool source needs 'path'"):
        resolve_sources([{"mpp": 0.5}], root)


def test_manifest_counts_tiles_per_source(tmp_path):
    from rckd.data.wsi.pipeline import TileConfig, run_tiling

    root = _lymphoma_tree(tmp_path, per_class=2)
    rows = resolve_sources([{"dataset": "lymphoma", "root": "lymphoma", "split": "train"}], root)
    csv = tmp_path / "slides.csv"
    csv.write_text("path,mpp\n" + "".join(f"{r.path},{r.mpp}\n" for r in rows))
    cfg = TileConfig(slides=[str(csv)], out=str(tmp_path / "pool"), target_mpp=0.5 * 1388 / 30,
                     patch_size=8, tissue_detection=False, progress=False)
    run_tiling(cfg)
    files = sorted((tmp_path / "pool").rglob("patches/*.h5"))
    m = pool_manifest(rows, files, {"patch_size": 8})
    assert m["sources"] == {"lymphoma:train": {"files": len(rows), "tiles": 6 * len(rows)}}  # 30x20 -> 3x2
    assert m["tiles"] == 6 * len(rows) and m["tile"] == {"patch_size": 8}


def test_real_cpu_pool_holds_no_val_or_test_image():
    """The committed grid's pool, resolved against the real data: disjoint from every val/test split."""
    data = shared_path()
    grid = yaml.safe_load(GRID.read_text())
    pool = {r.path for r in resolve_sources(grid["pool"]["sources"], data)}
    checked = 0
    for key, spec in grid["datasets"].items():
        for split in ("val", "test"):
            ds = get_dataset(spec["dataset"], str(data / spec["root"]), split, **spec.get("options", {}))
            held_out = {Path(it.path).resolve() for it in ds.items}
            assert not pool & held_out, f"{key}/{split} images in the pool: {sorted(pool & held_out)[:3]}"
            checked += len(held_out)
    assert checked > 100 and len(pool) > 300
