"""Tile pixels for a tile set, read in the slide's own tile order and cut or resized into place.

Readers with cheap small reads (tiled TIFFs decoded directly, plain images) are read tile by
tile in row-major order: each output tile is assembled from the stored tiles it covers, which a
row cache in the reader decodes once, and a tile that is exactly one stored JPEG tile is decoded
straight into its place in the output. Other readers (OpenSlide compositing every call) are read
in row strips at most ``max_block`` pixels wide and cut: one ``read_region`` per tile would
re-decode the same stored tiles again and again (CLAM #69). A read that fails is retried tile
by tile; tiles that still fail are reported with their index, left black, never fatal.

Work is cut into :class:`ExtractJob` units of whole h5 chunks. :func:`fill_chunk` fills a chunk
buffer; :func:`local_chunks` fills and encodes them in this process, and
:mod:`rckd.data.wsi.parallel` does the same in worker processes over shared memory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator

import numpy as np
from PIL import Image

from rckd.data.wsi.grid import GridGeometry
from rckd.data.wsi.h5format import encode_chunk
from rckd.data.wsi.reader import SlideReader, open_slide

__all__ = ["ExtractJob", "resize_tile", "read_tile", "read_tiles", "fill_chunk", "local_chunks",
           "make_jobs", "slide_handle", "release_handles"]

log = logging.getLogger(__name__)


def resize_tile(tile: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Resize an (h, w, 3) uint8 tile to ``size`` x ``size``: area filter down, bicubic up.

    ``out``, if given, receives the result (and is returned).
    """
    if tile.shape[0] != size or tile.shape[1] != size:
        resample = Image.Resampling.BOX if tile.shape[0] >= size else Image.Resampling.BICUBIC
        tile = np.asarray(Image.fromarray(tile).resize((size, size), resample))
    if out is None:
        return tile
    out[...] = tile
    return out


def read_tile(reader: SlideReader, x: int, y: int, geom: GridGeometry) -> np.ndarray:
    """One tile the simple way (one read_region), resized to ``geom.patch_size``."""
    tile = reader.read_region((x, y), geom.read_level, (geom.read_size, geom.read_size))
    return resize_tile(tile, geom.patch_size)


def read_tiles(reader: SlideReader, coords: np.ndarray, geom: GridGeometry, out: np.ndarray | None = None,
               max_block: int = 4096) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Pixels of every tile in ``coords`` (row-major level-0 top-lefts); returns (tiles, failures).

    ``tiles`` is ``out`` (or a new array), (N, patch_size, patch_size, 3) uint8; ``failures``
    lists ``(i, message)`` for tiles that could not be read (their pixels are zero).
    """
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    if out is None:
        out = np.empty((len(coords), geom.patch_size, geom.patch_size, 3), np.uint8)
    failures: list[tuple[int, str]] = []
    if reader.cheap_reads(geom.read_level):
        _tile_by_tile(reader, coords, geom, out, failures)
    else:
        _strips(reader, coords, geom, out, max_block, failures)
    return out, failures


def _tile_by_tile(reader, coords, geom: GridGeometry, out, failures) -> None:
    rs, same = geom.read_size, geom.read_size == geom.patch_size
    scratch = None if same else np.empty((rs, rs, 3), np.uint8)
    for i, (x, y) in enumerate(coords):
        try:
            if same:
                reader.read_region((int(x), int(y)), geom.read_level, (rs, rs), out=out[i])
            else:
                resize_tile(reader.read_region((int(x), int(y)), geom.read_level, (rs, rs), out=scratch),
                            geom.patch_size, out=out[i])
        except Exception as exc:  # noqa: BLE001 - a corrupt stored tile: recorded, not fatal
            out[i] = 0
            failures.append((i, f"{type(exc).__name__}: {exc}"))


def _strips(reader, coords, geom: GridGeometry, out, max_block: int, failures) -> None:
    rs, ds = geom.read_size, geom.read_downsample
    lx = np.round(coords[:, 0] / ds).astype(np.int64)
    ly = np.round(coords[:, 1] / ds).astype(np.int64)
    step = max(max_block - rs, rs)
    keys = ly * (1 << 24) + lx // step  # one strip per grid row, at most max_block wide
    order = np.argsort(keys, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
        if len(group) == 0:
            continue
        x0, y0 = int(lx[group].min()), int(ly[group].min())
        w, h = int(lx[group].max()) + rs - x0, int(ly[group].max()) + rs - y0
        try:
            window = reader.read_region((int(round(x0 * ds)), int(round(y0 * ds))), geom.read_level, (w, h))
        except Exception as exc:  # noqa: BLE001 - corrupt region: retry tile by tile
            log.warning("%s: window read at level %d (%d, %d) failed (%s); retrying tile by tile",
                        reader.path, geom.read_level, x0, y0, exc)
            _retry_tiles(reader, coords, geom, group, out, failures)
            continue
        for i in group:
            ox, oy = int(lx[i]) - x0, int(ly[i]) - y0
            resize_tile(window[oy:oy + rs, ox:ox + rs], geom.patch_size, out=out[i])


def _retry_tiles(reader, coords, geom, group, out, failures) -> None:
    for i in group:
        if hasattr(reader, "reopen"):
            reader.reopen()  # an OpenSlide handle stays failed once it errs
        try:
            out[i] = read_tile(reader, int(coords[i, 0]), int(coords[i, 1]), geom)
        except Exception as exc:  # noqa: BLE001
            out[i] = 0
            failures.append((int(i), f"{type(exc).__name__}: {exc}"))
    if hasattr(reader, "reopen"):
        reader.reopen()


@dataclasses.dataclass(frozen=True)
class ExtractJob:
    """One unit of work: tiles ``start .. start+len(coords)`` of one slide (whole chunks)."""

    slide_path: str
    mpp: float | None
    geom: GridGeometry
    start: int
    coords: np.ndarray
    chunk_tiles: int
    compression: str          # "gzip", "lzf" or "none"
    max_block: int = 4096
    fast: bool = True

    @property
    def n_chunks(self) -> int:
        """Chunks this job fills."""
        return -(-len(self.coords) // self.chunk_tiles)

    @property
    def first_chunk(self) -> int:
        """Index of the job's first chunk in the tile set."""
        return self.start // self.chunk_tiles


def fill_chunk(reader: SlideReader, job: ExtractJob, n: int, buffer: np.ndarray) -> list[tuple[int, str]]:
    """Fill ``buffer`` (chunk_tiles, P, P, 3) with the ``n``-th chunk of ``job``.

    A short last chunk is zero-padded. Returns the failures, with tile indices of the slide.
    """
    k = job.chunk_tiles
    part = job.coords[n * k:(n + 1) * k]
    _, failures = read_tiles(reader, part, job.geom, buffer[:len(part)], job.max_block)
    buffer[len(part):] = 0
    return [(job.start + n * k + i, msg) for i, msg in failures]


def local_chunks(jobs: list[ExtractJob]) -> Iterator[tuple[int, object, int, list]]:
    """Encoded chunks of ``jobs`` made in this process: ``(chunk index, data, filter mask, failures)``.

    ``data`` may be a view of a buffer reused for the next chunk: use it before resuming.
    """
    buffer = None
    for job in jobs:
        shape = (job.chunk_tiles, job.geom.patch_size, job.geom.patch_size, 3)
        if buffer is None or buffer.shape != shape:
            buffer = np.empty(shape, np.uint8)
        reader = slide_handle(job)
        for n in range(job.n_chunks):
            failures = fill_chunk(reader, job, n, buffer)
            data, mask = encode_chunk(buffer, job.compression)
            yield job.first_chunk + n, data, mask, failures


MIN_JOB_TILES = 64     # smallest unit of work: about a row of a small slide
MAX_JOB_TILES = 2048   # largest: bounds the work lost when a worker fails


def make_jobs(slide_path: str, mpp: float | None, geom: GridGeometry, coords: np.ndarray, *,
              chunk_tiles: int, compression: str, workers: int, fast: bool = True,
              max_block: int = 4096) -> list[ExtractJob]:
    """Split ``coords`` (row-major) into units of whole chunks, large first, then shrinking.

    Each unit is a contiguous run of rows, so a worker's row cache serves the rows it reads, and
    takes a share of what is left (guided scheduling): the last units are small, so workers
    finish together.
    """
    n, jobs, start = len(coords), [], 0
    while start < n:
        per = min(max((n - start) // (2 * max(1, workers)), MIN_JOB_TILES), MAX_JOB_TILES)
        per = max(chunk_tiles, per // chunk_tiles * chunk_tiles)
        jobs.append(ExtractJob(str(slide_path), mpp, geom, start, np.asarray(coords[start:start + per]),
                               chunk_tiles, compression, max_block, fast))
        start += per
    return jobs


class _Handles:
    """Per-process slide handle (opened lazily in each process, never shared across processes)."""

    def __init__(self):
        self.key = None
        self.pid = os.getpid()
        self.reader: SlideReader | None = None

    def get(self, job: ExtractJob) -> SlideReader:
        if self.pid != os.getpid():  # inherited through fork: never reuse the parent's handle
            self.key, self.reader, self.pid = None, None, os.getpid()
        key = (job.slide_path, job.mpp, job.fast)
        if key != self.key:
            self.close()
            self.reader = open_slide(job.slide_path, mpp=job.mpp, fast=job.fast)
            self.key = key
        return self.reader

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.key, self.reader = None, None


_HANDLES = _Handles()


def slide_handle(job: ExtractJob) -> SlideReader:
    """This process's open reader for ``job``'s slide (opened on first use, kept for the next job)."""
    return _HANDLES.get(job)


def release_handles() -> None:
    """Close this process's cached slide handle (after a slide is done)."""
    _HANDLES.close()
