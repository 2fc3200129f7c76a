"""The h5 tile-set layout (DESIGN.md §4): the one module that spells its names.

A tile set is one h5 file per slide, ``<slide>.h5`` (or TRIDENT's ``<slide>_patches.h5``):

- dataset ``coords`` (N, 2) int64: level-0 top-left (x, y) of each tile, row-major order;
- optional dataset ``imgs`` (N, H, W, 3) uint8: the tile pixels at the target mpp, chunked a few
  tiles per chunk; stored raw by default, or compressed with h5py's built-in lzf (chunks that
  would shrink by less than 10 %, i.e. most decoded tissue, are then stored raw with the filter
  marked skipped, as HDF5 does for optional filters) or gzip (readable by any HDF5 tool);
- attributes on ``coords`` (where CLAM and TRIDENT put theirs), in three families:
  CLAM ``patch_size``, ``patch_level``, ``downsample``, ``level_dim``, ``downsampled_level_dim``,
  ``name``; TRIDENT ``patch_size``, ``patch_size_level0``, ``level0_width``, ``level0_height``,
  ``overlap``, ``level0_magnification`` and ``target_magnification`` (always, from mpp: 10 / mpp);
  ours: ``target_mpp``, ``target_patch_size``, ``level0_mpp``, ``read_level``, ``read_size``,
  ``tissue_method``, ``tissue_params`` (JSON), ``min_tissue``, ``slide_path``, ``slide_size``,
  ``slide_fingerprint``, ``objective_power`` (when the slide states one), ``rckd_version``,
  ``schema_version``.

CLAM and TRIDENT both read ``patch_size``, with different meanings. TRIDENT reads
``patch_size`` output pixels at ``target_magnification``, i.e. a level-0 footprint of
``patch_size * level0_magnification / target_magnification``; CLAM reads ``patch_size`` pixels
at ``patch_level`` (then resizes). By default ``patch_size`` is the output side at the target
mpp (TRIDENT's meaning), so TRIDENT cuts rckd's tile exactly, and CLAM does whenever the read
level is at the target mpp. With ``clam_patch_size`` it is the side read at ``patch_level``
(CLAM's meaning) and ``target_magnification`` is that level's, so both cut rckd's tile (TRIDENT
at the read level's resolution). ``target_patch_size`` is always the output side.
Reading understands our files, CLAM's and TRIDENT's (:func:`read_tile_set`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from rckd import __version__
from rckd.data.wsi.grid import GridGeometry
from rckd.io import atomic_path

__all__ = ["SCHEMA_VERSION", "TileSetInfo", "tile_set_attrs", "tile_set_name", "slide_stems",
           "write_tile_set", "read_tile_set", "encode_chunk", "read_images", "drop_tiles", "COORDS", "IMGS"]

SCHEMA_VERSION = 2  # 2: target_patch_size, magnifications from mpp, optional CLAM-sized patch_size
COORDS = "coords"
IMGS = "imgs"
TRIDENT_SUFFIX = "_patches"


def tile_set_attrs(geom: GridGeometry, *, name: str, slide_path: str, slide_size: tuple[int, int],
                   fingerprint: str, level_dimensions: tuple[tuple[int, int], ...],
                   tissue_info: dict, min_tissue: float, objective_power: float | None = None,
                   clam_patch_size: bool = False) -> dict:
    """All attributes of a tile set, CLAM + TRIDENT + ours, as a flat dict.

    ``clam_patch_size`` writes ``patch_size`` as the side read at ``patch_level`` (module docstring).
    """
    w0, h0 = slide_size
    lw, lh = level_dimensions[geom.read_level]
    if clam_patch_size:  # the side read at patch_level, that level's magnification
        patch_size, patch_mpp = geom.read_size, geom.read_mpp
    else:  # the output side at the target mpp
        patch_size, patch_mpp = geom.patch_size, geom.target_mpp
    attrs = {
        # CLAM (patch_size: see the module docstring)
        "patch_size": patch_size, "patch_level": geom.read_level,
        "downsample": np.array([w0 / lw, h0 / lh], np.float64),
        "level_dim": np.array([lw, lh], np.int64), "downsampled_level_dim": np.array([lw, lh], np.int64),
        "name": name,
        # TRIDENT: magnification is 10 / mpp (its own convention, e.g. 0.5 um/px = 20x)
        "patch_size_level0": geom.patch_size_level0, "level0_width": int(w0), "level0_height": int(h0),
        "overlap": geom.overlap, "level0_magnification": 10.0 / geom.level0_mpp,
        "target_magnification": 10.0 / patch_mpp,
        # ours
        "target_mpp": geom.target_mpp, "target_patch_size": geom.patch_size, "level0_mpp": geom.level0_mpp,
        "read_level": geom.read_level, "read_size": geom.read_size, "read_downsample": geom.read_downsample,
        "stride_level0": geom.stride_level0,
        "tissue_method": str(tissue_info.get("method", "auto")),
        "tissue_params": json.dumps(tissue_info, default=str), "min_tissue": float(min_tissue),
        "slide_path": str(slide_path), "slide_size": np.array([w0, h0], np.int64),
        "slide_fingerprint": fingerprint, "rckd_version": __version__, "schema_version": SCHEMA_VERSION,
    }
    if objective_power:
        attrs["objective_power"] = float(objective_power)
    return attrs


def tile_set_name(slide_name: str, trident_names: bool = False) -> str:
    """File name of a slide's tile set: ``<slide>.h5``, or TRIDENT's ``<slide>_patches.h5``."""
    return f"{slide_name}{TRIDENT_SUFFIX if trident_names else ''}.h5"


def slide_stems(info: "TileSetInfo") -> list[str]:
    """File stems the slide of a tile set may have, most likely first.

    The stem of a recorded slide path, the ``name`` attribute (CLAM, TRIDENT, ours), then the
    tile file's stem without TRIDENT's ``_patches``, then the stem itself.
    """
    stems = [Path(info.slide_path).stem] if info.slide_path else []
    stems.append(info.name)
    stem = info.path.stem
    if stem.endswith(TRIDENT_SUFFIX):
        stems.append(stem[:-len(TRIDENT_SUFFIX)])
    stems.append(stem)
    return list(dict.fromkeys(s for s in stems if s))


PROBE_BYTES = 1 << 15   # lzf: bytes of a chunk compressed first to see whether it pays
MIN_SAVING = 0.10       # lzf: chunks saving less than this are stored raw (filter skipped)


def encode_chunk(tiles: np.ndarray, compression: str) -> tuple[np.ndarray | bytes, int]:
    """Encode one (k, H, W, 3) uint8 chunk as ``imgs`` stores it: (data, HDF5 filter mask).

    "none" returns the array itself (no copy). "gzip" deflates it as h5py's gzip filter does.
    With "lzf" a chunk whose 32 KiB sample (8 blocks spread over it) shrinks by less than
    ``MIN_SAVING`` is stored raw with filter mask 1 (filter skipped, as HDF5 itself does with
    optional filters): decoded tissue barely compresses, while glass compresses many-fold.
    """
    raw = np.ascontiguousarray(tiles, np.uint8)
    if compression == "none":
        return raw, 0
    import imagecodecs

    if compression == "gzip":
        return bytes(imagecodecs.deflate_encode(raw, level=1)), 0
    if compression != "lzf":
        raise ValueError(f"unknown image compression {compression!r} (lzf, gzip or none)")
    flat = raw.reshape(-1)
    block = 4096
    starts = np.linspace(0, max(flat.size - block, 0), PROBE_BYTES // block).astype(np.int64)
    sample = np.concatenate([flat[i:i + block] for i in starts])
    if len(imagecodecs.lzf_encode(sample, header=False)) <= (1 - MIN_SAVING) * sample.size:
        data = bytes(imagecodecs.lzf_encode(raw, header=False))
        if len(data) < raw.nbytes:
            return data, 0
    return raw, 1


def write_tile_set(path: str | os.PathLike, coords: np.ndarray, attrs: dict, *,
                   chunks: Iterable[tuple] | None = None, image_size: int | None = None,
                   chunk_tiles: int = 4, compression: str = "gzip") -> Path:
    """Write a tile set atomically: the file appears only once complete.

    ``chunks`` yields ``(chunk_index, data[, filter_mask])`` in any order, ``data`` being the
    chunk as :func:`encode_chunk` encodes it for ``compression`` (bytes or a buffer);
    chunk ``i`` holds tiles ``i*chunk_tiles ... (i+1)*chunk_tiles - 1`` (the last one
    zero-padded to full size).
    """
    if compression not in ("gzip", "lzf", "none"):
        raise ValueError(f"unknown image compression {compression!r} (gzip, lzf or none)")
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            dset = f.create_dataset(COORDS, data=coords)
            for key, value in attrs.items():
                dset.attrs[key] = value
            if image_size is not None:
                n = len(coords)
                k = max(1, chunk_tiles)
                imgs = f.create_dataset(IMGS, shape=(n, image_size, image_size, 3), dtype=np.uint8,
                                        maxshape=(None, image_size, image_size, 3),
                                        chunks=(k, image_size, image_size, 3),
                                        compression=None if compression == "none" else compression)
                written = 0
                for index, data, *mask in chunks or ():
                    imgs.id.write_direct_chunk((index * k, 0, 0, 0), data, mask[0] if mask else 0)
                    written += 1
                expected = -(-n // k) if n else 0
                if written != expected:
                    raise RuntimeError(f"{path}: wrote {written} of {expected} image chunks")
    return path


@dataclasses.dataclass
class TileSetInfo:
    """A tile set read back, normalised over our, CLAM's and TRIDENT's attribute names."""

    path: Path
    format: str                    # "rckd", "clam" or "trident"
    coords: np.ndarray             # (N, 2) int64 level-0 top-left
    patch_size: int                # output tile side
    patch_size_level0: int | None  # footprint side in level-0 pixels (None: needs the slide)
    read_level: int                # level to read from
    read_size: int | None          # footprint side at read_level (None: needs the slide)
    target_mpp: float | None       # None when the file does not say (CLAM, TRIDENT)
    level0_mpp: float | None
    slide_path: str | None
    name: str
    has_images: bool
    attrs: dict

    def __len__(self) -> int:
        return len(self.coords)


def _scalar(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_tile_set(path: str | os.PathLike) -> TileSetInfo:
    """Read coordinates and attributes of a tile set (ours, CLAM's or TRIDENT's)."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable h5 file ({exc})") from None
    with f:
        if COORDS not in f:
            raise ValueError(f"{path}: no 'coords' dataset (not a tile set)")
        dset = f[COORDS]
        attrs = {k: _scalar(v) for k, v in dset.attrs.items()}
        for k, v in f.attrs.items():
            attrs.setdefault(k, _scalar(v))
        coords = np.asarray(dset[()], np.int64).reshape(-1, 2)
        has_images = IMGS in f and f[IMGS].shape[0] == len(coords)
    if "patch_size" not in attrs:
        raise ValueError(f"{path}: 'coords' has no patch_size attribute")
    name = str(attrs.get("name", path.stem))
    patch_size = int(attrs["patch_size"])
    if "schema_version" in attrs and "read_size" in attrs:
        patch_size = int(attrs.get("target_patch_size", patch_size))  # schema 1: patch_size was it
        return TileSetInfo(path, "rckd", coords, patch_size, int(attrs["patch_size_level0"]),
                           int(attrs["read_level"]), int(attrs["read_size"]), float(attrs["target_mpp"]),
                           float(attrs["level0_mpp"]), str(attrs["slide_path"]), name, has_images, attrs)
    if "patch_size_level0" in attrs:  # TRIDENT: footprint at level 0, resized to patch_size
        size0 = int(attrs["patch_size_level0"])
        return TileSetInfo(path, "trident", coords, patch_size, size0, 0, size0, None, None, None,
                           name, has_images, attrs)
    level = int(attrs.get("patch_level", 0))  # CLAM: patch_size pixels at patch_level
    ds = attrs.get("downsample")
    size0 = None
    if ds is not None:
        size0 = int(round(patch_size * float(np.asarray(ds, np.float64).ravel()[0])))
    elif level == 0:
        size0 = patch_size
    return TileSetInfo(path, "clam", coords, patch_size, size0, level, patch_size, None, None, None,
                       name, has_images, attrs)


def read_images(f: h5py.File, index: int) -> np.ndarray:
    """The stored pixels of tile ``index`` from an open tile-set file, (H, W, 3) uint8."""
    return f[IMGS][index]


def drop_tiles(path: str | os.PathLike, indices: list[int], batch: int = 256) -> Path:
    """Rewrite a tile set without the tiles at ``indices`` (e.g. unreadable ones), atomically."""
    path = Path(path)
    with h5py.File(path, "r") as src:
        coords = src[COORDS][()]
        attrs = dict(src[COORDS].attrs)
        keep = np.ones(len(coords), bool)
        keep[np.asarray(indices, np.int64)] = False
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as dst:
            dset = dst.create_dataset(COORDS, data=coords[keep])
            for key, value in attrs.items():
                dset.attrs[key] = value
            if IMGS in src:
                imgs = src[IMGS]
                out = dst.create_dataset(IMGS, shape=(int(keep.sum()),) + imgs.shape[1:], dtype=np.uint8,
                                         chunks=imgs.chunks, maxshape=(None,) + imgs.shape[1:],
                                         compression=imgs.compression)
                idx = np.flatnonzero(keep)
                for s in range(0, len(idx), batch):
                    sel = idx[s:s + batch]
                    out[s:s + len(sel)] = imgs[sel[0]:sel[-1] + 1][sel - sel[0]]
    return path
