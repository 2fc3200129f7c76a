"""BACH (ICIAR 2018 Grand Challenge on BreAst Cancer Histology).

Microscopy (classification): ``ICIAR2018_BACH_Challenge/Photos/{Normal,Benign,InSitu,Invasive}/*.tif``,
400 RGB images 2048x1536 at 0.42 um/px, 100 per class. The test images' labels were never
released, so train/val/test are carved 60/20/20 per class by image (no patient ids are given).

Whole slides (segmentation): ``ICIAR2018_BACH_Challenge/WSI/A01.svs .. A10.svs`` with Aperio
ImageScope XML region annotations ``A01.xml ..``. Each ``Region`` (its ``Text`` attribute, or the
enclosing ``Annotation``'s ``Name``) is mapped to a class by :func:`region_class` and rasterised;
pixels outside every region are class 0 ("normal/background"). Slides are cut into a grid of
``tile_size`` tiles at ``mpp`` microns/pixel; tiles with less than ``min_tissue`` tissue (a
saturation threshold on a thumbnail) and no annotation are dropped. Alternatively pass ``tiles=``
the ``patches/`` folder of ``rckd tile`` run on the slides: its h5 tile sets (one per slide, named
by the slide stem) fix the tile positions, size and mpp instead. Splits are by slide (carved
60/20/20 with the usual stable hash; 10 annotated slides give 6/2/2).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from rckd.data.datasets.base import DatasetError, Item, carve_splits
from rckd.data.datasets.folders import ClassFolderDataset

__all__ = ["Bach", "BachWSI", "parse_regions", "region_class", "rasterise_regions"]

log = logging.getLogger(__name__)

ROOT_NAMES = ("ICIAR2018_BACH_Challenge",)
WSI_CLASSES = ("normal", "benign", "in_situ", "invasive")


class Bach(ClassFolderDataset):
    """BACH microscopy photos, 4 classes."""

    FOLDERS = ("Normal", "Benign", "InSitu", "Invasive")
    classes = ("normal", "benign", "in_situ", "invasive")
    ROOT_NAMES = tuple(f"{n}/Photos" for n in ROOT_NAMES) + ("Photos",)
    SUFFIXES = (".tif", ".tiff")
    mpp = 0.42
    OFFICIAL_COUNTS = {"all": 400, "train": 240, "val": 80, "test": 80}


def region_class(text: str) -> int:
    """Map an annotation label ('Benign', 'Carcinoma in situ', 'Invasive carcinoma', ...) to 0..3."""
    t = text.lower().replace("_", " ").replace("-", " ")
    if "invasive" in t:
        return 3
    if "situ" in t or "insitu" in t.replace(" ", ""):
        return 2
    if "benign" in t:
        return 1
    return 0


def parse_regions(xml_path: Path) -> list[tuple[int, np.ndarray]]:
    """(class, (N, 2) float level-0 x, y vertices) per polygon of an ImageScope XML file."""
    try:
        tree = ET.parse(xml_path)
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"{xml_path}: not a readable XML annotation file ({exc})") from None
    out = []
    for ann in tree.getroot().iter("Annotation"):
        name = ann.get("Name", "") or ""
        for region in ann.iter("Region"):
            label = region_class(region.get("Text", "") or name)
            pts = [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")]
            if len(pts) >= 3:
                out.append((label, np.asarray(pts, dtype=np.float64)))
    return out


def rasterise_regions(regions: list[tuple[int, np.ndarray]], origin: tuple[float, float],
                      scale: float, size: tuple[int, int]) -> np.ndarray:
    """Class map (H, W) of ``regions`` in a window at level-0 ``origin``, ``scale`` px per level-0 px.

    Regions are drawn in file order, so a later region wins where two overlap.
    """
    w, h = size
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0 = origin
    for label, pts in regions:
        if label == 0:
            continue
        xy = (pts - (x0, y0)) * scale
        if xy[:, 0].max() < 0 or xy[:, 1].max() < 0 or xy[:, 0].min() > w or xy[:, 1].min() > h:
            continue
        draw.polygon([tuple(p) for p in xy], fill=int(label))
    return np.asarray(canvas, dtype=np.int64)


class BachWSI(torch.utils.data.Dataset):
    """BACH annotated whole slides as (image, mask) tiles at ``mpp`` microns/pixel."""

    classes = WSI_CLASSES
    task = "segmentation"
    OFFICIAL_COUNTS = {"slides": 10}

    def __init__(self, root: str | Path, split: str = "train", mpp: float = 2.0,
                 tile_size: int = 256, min_tissue: float = 0.25, seed: int = 0,
                 slide_mpp: float | None = None, tiles: str | Path | None = None) -> None:
        import openslide  # local: only this dataset needs it

        self.root, self.split, self.mpp, self.tile_size = Path(root), split, float(mpp), int(tile_size)
        wsi_dir = self._find_wsi_dir(self.root)
        slides = sorted(p for p in wsi_dir.iterdir() if p.suffix.lower() == ".svs")
        annotated = [p for p in slides if p.with_suffix(".xml").is_file()]
        if not annotated:
            raise DatasetError(f"{wsi_dir}: no .svs slide with a matching .xml annotation")
        items = [Item(p, label=0, group=p.stem) for p in annotated]
        if split != "all":
            items = carve_splits(items, None, seed, stratify=False)[split]
        self.tiles: list[tuple[Path, float, float, float]] = []  # slide, x0, y0, level-0 tile size
        self._regions: dict[Path, list] = {}
        self._slides: dict[Path, object] = {}
        for item in items:
            slide = openslide.OpenSlide(str(item.path))
            base = slide_mpp or float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X, "nan"))
            if not np.isfinite(base):
                raise DatasetError(f"{item.path}: slide has no mpp; pass slide_mpp")
            regions = parse_regions(item.path.with_suffix(".xml"))
            self._regions[item.path] = regions
            if tiles is not None:
                self.tiles += self._from_tile_set(Path(tiles), item.path)
            else:
                self.tiles += self._grid(item.path, slide, base, regions, min_tissue)
            slide.close()
        if not self.tiles:
            raise DatasetError(f"{wsi_dir}: split {split!r} yields no tissue tiles")

    @staticmethod
    def _find_wsi_dir(root: Path) -> Path:
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset root not found")
        for cand in (root / "ICIAR2018_BACH_Challenge" / "WSI", root / "WSI", root):
            if cand.is_dir() and any(p.suffix.lower() == ".svs" for p in cand.iterdir()):
                return cand
        raise DatasetError(f"{root}: no WSI folder with .svs slides (expected ICIAR2018_BACH_Challenge/WSI)")

    def _grid(self, path: Path, slide, base_mpp: float, regions, min_tissue: float) -> list:
        width, height = slide.dimensions
        step = self.tile_size * self.mpp / base_mpp  # level-0 pixels per tile
        thumb_scale = 1.0 / max(1.0, step / 16)  # 16 thumbnail px per tile side
        tw, th = max(1, int(width * thumb_scale)), max(1, int(height * thumb_scale))
        thumb = np.asarray(slide.get_thumbnail((tw, th)).convert("HSV").resize((tw, th)))
        tissue = thumb[..., 1] > 20
        labels = rasterise_regions(regions, (0, 0), tw / width, (tw, th)) > 0
        out = []
        for y0 in np.arange(0, height - step + 1e-6, step):
            for x0 in np.arange(0, width - step + 1e-6, step):
                sl = (slice(int(y0 * th / height), max(int(y0 * th / height) + 1, int((y0 + step) * th / height))),
                      slice(int(x0 * tw / width), max(int(x0 * tw / width) + 1, int((x0 + step) * tw / width))))
                if tissue[sl].mean() >= min_tissue or labels[sl].any():
                    out.append((path, float(x0), float(y0), float(step)))
        log.info("%s: %d tiles of %d px at %.2f um/px", path.name, len(out), self.tile_size, self.mpp)
        return out

    def _from_tile_set(self, folder: Path, slide: Path) -> list:
        """Tile positions from the ``rckd tile`` h5 file of ``slide``."""
        from rckd.data.wsi.h5format import read_tile_set
        from rckd.io import safe_name

        path = folder / f"{safe_name(slide.stem)}.h5"
        if not path.is_file():
            raise DatasetError(f"{path}: no tile set for slide {slide.name} (run rckd tile on the WSI folder)")
        info = read_tile_set(path)
        if info.patch_size_level0 is None:
            raise DatasetError(f"{path}: tile set does not state its level-0 footprint")
        self.tile_size = int(info.patch_size)
        if info.target_mpp:
            self.mpp = float(info.target_mpp)
        step = float(info.patch_size_level0)
        return [(slide, float(x), float(y), step) for x, y in info.coords]

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict:
        import openslide

        path, x0, y0, step = self.tiles[index]
        slide = self._slides.get(path)
        if slide is None:
            slide = self._slides[path] = openslide.OpenSlide(str(path))
        level = slide.get_best_level_for_downsample(step / self.tile_size)
        ds = slide.level_downsamples[level]
        read = int(np.ceil(step / ds))
        region = slide.read_region((int(x0), int(y0)), level, (read, read)).convert("RGB")
        region = region.resize((self.tile_size, self.tile_size), Image.BILINEAR)
        image = torch.from_numpy(np.asarray(region).copy()).permute(2, 0, 1).contiguous()
        mask = rasterise_regions(self._regions[path], (x0, y0), self.tile_size / step,
                                 (self.tile_size, self.tile_size))
        return {"image": image, "mask": torch.from_numpy(mask)}

    def __getstate__(self) -> dict:  # slide handles are opened lazily per worker
        state = dict(self.__dict__)
        state["_slides"] = {}
        return state
