import numpy as np
import pytest
import tifffile

from rckd.data.datasets import get_dataset
from rckd.data.datasets.bach import Bach, BachWSI, parse_regions, rasterise_regions, region_class
from rckd.data.datasets.base import DatasetError

FOLDERS = ("Normal", "Benign", "InSitu", "Invasive")


def test_bach_photos_official_layout(class_tree):
    root = class_tree(FOLDERS, 5, ".tif", sub="ICIAR2018_BACH_Challenge/Photos")
    parts = {s: get_dataset("bach", root, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert parts["train"].class_counts() == {"normal": 3, "benign": 3, "in_situ": 3, "invasive": 3}
    assert parts["train"].mpp == 0.42
    assert Bach(root, "all").validate(expected=20)
    with pytest.raises(DatasetError, match="400"):
        Bach(root, "all").validate(expected="official")


def test_bach_photos_missing_class(class_tree):
    root = class_tree(FOLDERS[:3], 2, ".tif", sub="Photos")
    with pytest.raises(DatasetError, match="Invasive"):
        Bach(root, "train")


def test_region_class_names():
    assert [region_class(t) for t in ("Benign", "Carcinoma in situ", "Invasive carcinoma", "Normal", "")] == [1, 2, 3, 0, 0]


XML = """<?xml version="1.0"?>
<Annotations MicronsPerPixel="0.5">
 <Annotation Id="1" Name="">
  <Regions>
   <Region Id="1" Text="Benign"><Vertices>
     <Vertex X="0" Y="0"/><Vertex X="256" Y="0"/><Vertex X="256" Y="256"/><Vertex X="0" Y="256"/>
   </Vertices></Region>
   <Region Id="2" Text="Carcinoma invasive"><Vertices>
     <Vertex X="512" Y="256"/><Vertex X="768" Y="256"/><Vertex X="768" Y="512"/><Vertex X="512" Y="512"/>
   </Vertices></Region>
  </Regions>
 </Annotation>
</Annotations>"""


def _fake_wsi(root, names=("A01", "A02", "A03", "A04", "A05")):
    wsi = root / "ICIAR2018_BACH_Challenge" / "WSI"
    wsi.mkdir(parents=True)
    img = np.full((512, 768, 3), 230, np.uint8)
    img[:, :, 1] = 60  # pink, saturated: tissue everywhere
    for n in names:
        tifffile.imwrite(wsi / f"{n}.svs", img, tile=(256, 256), photometric="rgb",
                         resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
        (wsi / f"{n}.xml").write_text(XML)
    tifffile.imwrite(wsi / "unannotated.svs", img, tile=(256, 256), photometric="rgb",
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    return root


def test_parse_and_rasterise(tmp_path):
    (tmp_path / "a.xml").write_text(XML)
    regions = parse_regions(tmp_path / "a.xml")
    assert [r[0] for r in regions] == [1, 3]
    mask = rasterise_regions(regions, (0, 0), 0.25, (192, 128))
    assert mask[10, 10] == 1 and mask[100, 150] == 3 and mask[100, 10] == 0
    with pytest.raises(DatasetError, match="not a readable XML"):
        (tmp_path / "b.xml").write_text("<Annotations>")
        parse_regions(tmp_path / "b.xml")


def test_bach_wsi_tiles_and_masks(tmp_path):
    root = _fake_wsi(tmp_path)
    ds = BachWSI(root, "all", mpp=1.0, tile_size=128)  # 768x512 at 0.5 um/px -> 3x2 tiles of 256 level-0 px
    assert len(ds) == 5 * 6
    s = ds[0]
    assert s["image"].shape == (3, 128, 128) and s["image"].dtype.is_floating_point is False
    assert s["mask"].shape == (128, 128) and int(s["mask"][5, 5]) == 1
    invasive = ds[5]  # tile (512, 256)
    assert int(invasive["mask"][64, 64]) == 3
    train, test = BachWSI(root, "train", mpp=1.0, tile_size=128), BachWSI(root, "test", mpp=1.0, tile_size=128)
    assert {t[0] for t in train.tiles}.isdisjoint({t[0] for t in test.tiles})


def test_bach_wsi_without_annotations(tmp_path):
    (tmp_path / "WSI").mkdir()
    img = np.zeros((256, 256, 3), np.uint8)
    tifffile.imwrite(tmp_path / "WSI" / "A01.svs", img, tile=(256, 256), photometric="rgb")
    with pytest.raises(DatasetError, match="matching .xml"):
        BachWSI(tmp_path, "all")


def test_bach_wsi_from_rckd_tile_output(tmp_path):
    from rckd.data.wsi.pipeline import TileConfig, run_tiling

    root = _fake_wsi(tmp_path / "data", names=("A01", "A02"))
    wsi = root / "ICIAR2018_BACH_Challenge" / "WSI"
    cfg = TileConfig(slides=[str(wsi / "A01.svs"), str(wsi / "A02.svs")], out=str(tmp_path / "tiles"),
                     target_mpp=1.0, patch_size=64, tissue_detection=False, min_tissue=0.0)
    assert run_tiling(cfg) == 0
    patches = next((tmp_path / "tiles").glob("*/patches"))
    ds = BachWSI(root, "all", tiles=patches)
    assert len(ds) == 2 * 6 * 4 and ds.tile_size == 64 and ds.mpp == 1.0  # 768x512 @0.5 -> 384x256 @1.0
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and int(s["mask"][10, 10]) == 1
    with pytest.raises(DatasetError, match="no tile set"):
        BachWSI(root, "all", tiles=tmp_path)
