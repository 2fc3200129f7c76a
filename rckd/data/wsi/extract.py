"""Fast tile pixel extraction: large aligned reads cut into tiles, in row-major order.

One ``read_region`` per tile re-decodes the same compressed slide tiles again and again (CLAM
#69). Here the tiles of one grid row are grouped into strips at most ``max_block`` pixels wide at
the read level; each strip is read once and cut (strips, not tall windows: OpenSlide slows down
sharply on very large regions, and row-major strips let the tile caches serve the next row).
For Aperio and generic tiled TIFFs the reader assembles regions from the file's own tiles
(:class:`rckd.data.wsi.reader.TiledTiffLevels`), so each stored tile is decoded about once.
A strip that fails to read is retried tile by tile and tiles that still fail are reported, not
fatal. Work is split into units of whole h5 chunks so worker processes compress their own
chunks and the parent only writes them (``write_direct_chunk``).
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import logging
import math
import os
from typing import Iterator

import numpy as np
from PIL import Image

from rckd.data.wsi.grid import GridGeometry
from rckd.data.wsi.reader import SlideReader, open_slide

__all__ = ["ExtractJob", "resize_tile", "read_tile", "read_tiles", "extract_unit",
           "make_jobs", "release_handles", "run_jobs", "LazyPool"]

log = logging.getLogger(__name__)


def resize_tile(tile: np.ndarray, size: int) -> np.ndarray:
    """Resize an (h, w, 3) uint8 tile to ``size`` x ``size``: area filter down, bicubic up."""
    if tile.shape[0] == size and tile.shape[1] == size:
        return tile
    resample = Image.Resampling.BOX if tile.shape[0] >= size else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(tile).resize((size, size), resample))


def read_tile(reader: SlideReader, x: int, y: int, geom: GridGeometry) -> np.ndarray:
    """One tile the simple way (one read_region), resized to ``geom.patch_size``."""
    tile = reader.read_region((x, y), geom.read_level, (geom.read_size, geom.read_size))
    return resize_tile(tile, geom.patch_size)


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


class _Handles:
    """Per-process slide handles (opened lazily in each worker, never shared across processes)."""

    def __init__(self):
        self.key = None
        self.pid = os.getpid()
        self.reader: SlideReader | None = None

    def get(self, job: ExtractJob) -> SlideReader:
        if self.pid != os.getpid():  # inherited through fork: never reuse the parent's handles
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


def _read_window(reader, geom: GridGeometry, lx0: int, ly0: int, w: int, h: int) -> np.ndarray:
    ds = geom.read_downsample
    return reader.read_region((int(round(lx0 * ds)), int(round(ly0 * ds))), geom.read_level, (w, h))


def read_tiles(reader: SlideReader, coords: np.ndarray, geom: GridGeometry,
               max_block: int = 4096) -> tuple[np.ndarray, list]:
    """Pixels of every tile in ``coords`` via windowed reads; returns (tiles, failures).

    ``tiles`` is (N, patch_size, patch_size, 3) uint8; ``failures`` lists ``(i, message)`` for
    tiles that could not be read (their pixels are left zero).
    """
    coords = np.asarray(coords, np.int64).reshape(-1, 2)
    n, rs, ds = len(coords), geom.read_size, geom.read_downsample
    out = np.zeros((n, geom.patch_size, geom.patch_size, 3), np.uint8)
    failures: list[tuple[int, str]] = []
    lx = np.round(coords[:, 0] / ds).astype(np.int64)
    ly = np.round(coords[:, 1] / ds).astype(np.int64)
    step = max(max_block - rs, rs)
    keys = ly * (1 << 24) + lx // step  # one strip per grid row, at most max_block wide
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        x0, y0 = int(lx[group].min()), int(ly[group].min())
        w, h = int(lx[group].max()) + rs - x0, int(ly[group].max()) + rs - y0
        try:
            window = _read_window(reader, geom, x0, y0, w, h)
        except Exception as exc:  # noqa: BLE001 - corrupt region: retry tile by tile
            log.warning("%s: window read at level %d (%d, %d) failed (%s); retrying tile by tile",
                        reader.path, geom.read_level, x0, y0, exc)
            _retry_tiles(reader, coords, geom, group, out, failures)
            continue
        for i in group:
            ox, oy = int(lx[i]) - x0, int(ly[i]) - y0
            out[i] = resize_tile(window[oy:oy + rs, ox:ox + rs], geom.patch_size)
    return out, failures


def _retry_tiles(reader, coords, geom, group, out, failures) -> None:
    for i in group:
        if hasattr(reader, "reopen"):
            reader.reopen()
        try:
            out[i] = read_tile(reader, int(coords[i, 0]), int(coords[i, 1]), geom)
        except Exception as exc:  # noqa: BLE001
            failures.append((int(i), f"{type(exc).__name__}: {exc}"))
    if hasattr(reader, "reopen"):
        reader.reopen()


PROBE_BYTES = 1 << 15   # lzf: bytes of a chunk compressed first to see whether it pays
MIN_SAVING = 0.10       # lzf: chunks saving less than this are stored raw (filter skipped)


def _encode(tiles: np.ndarray, compression: str) -> tuple[bytes, int]:
    """Encode one chunk; returns (data, HDF5 filter mask: 1 = stored raw, filter skipped).

    With lzf a chunk whose 32 KiB sample (8 blocks spread over it) shrinks by less than ``MIN_SAVING`` is stored raw, as
    HDF5 itself does with optional filters: decoded tissue barely compresses (~8 %) at more
    CPU than decoding it took, while glass and pale chunks compress many-fold.
    """
    raw = np.ascontiguousarray(tiles)
    if compression == "gzip":
        import imagecodecs

        return bytes(imagecodecs.deflate_encode(raw, level=1)), 0
    if compression == "lzf":
        import imagecodecs

        flat = raw.reshape(-1)
        block = 4096
        starts = np.linspace(0, max(flat.size - block, 0), PROBE_BYTES // block).astype(np.int64)
        sample = np.concatenate([flat[i:i + block] for i in starts])
        probe = imagecodecs.lzf_encode(sample, header=False)
        if len(probe) <= (1 - MIN_SAVING) * sample.size:
            data = bytes(imagecodecs.lzf_encode(raw, header=False))
            if len(data) < raw.nbytes:
                return data, 0
        return raw.tobytes(), 1
    return raw.tobytes(), 0


def extract_unit(job: ExtractJob) -> tuple[int, list[tuple[int, bytes, int]], list[tuple[int, str]]]:
    """Read and encode one unit; returns (start, [(chunk_index, data, filter_mask)], failures).

    Runs in worker processes; slide handles are cached per process.
    """
    reader = _HANDLES.get(job)
    tiles, failures = read_tiles(reader, job.coords, job.geom, job.max_block)
    k = job.chunk_tiles
    chunks = []
    for c in range(0, len(tiles), k):
        part = tiles[c:c + k]
        if len(part) < k:
            pad = np.zeros((k - len(part),) + part.shape[1:], np.uint8)
            part = np.concatenate([part, pad])
        data, mask = _encode(part, job.compression)
        chunks.append(((job.start + c) // k, data, mask))
    return job.start, chunks, [(job.start + i, msg) for i, msg in failures]


def make_jobs(slide_path: str, mpp: float | None, geom: GridGeometry, coords: np.ndarray, *,
              chunk_tiles: int, compression: str, workers: int, fast: bool = True,
              max_block: int = 4096) -> list[ExtractJob]:
    """Split ``coords`` (row-major) into units of whole chunks, a few per worker."""
    n = len(coords)
    per = max(chunk_tiles, int(math.ceil(n / max(1, workers * 6))))
    per = int(math.ceil(per / chunk_tiles)) * chunk_tiles
    per = min(per, max(chunk_tiles, 1024))
    return [ExtractJob(str(slide_path), mpp, geom, s, np.asarray(coords[s:s + per]), chunk_tiles,
                       compression, max_block, fast) for s in range(0, n, per)]


def release_handles() -> None:
    """Close this process's cached slide handle (after a slide is done)."""
    _HANDLES.close()


MIN_PARALLEL_TILES = 256  # smaller slides are done in this process: forking costs more than it saves


class LazyPool:
    """A process pool forked on first use (small slides never pay for it)."""

    def __init__(self, context, processes: int):
        self.context, self.processes, self._pool = context, processes, None

    def get(self):
        """The pool, created now if needed (after freezing the GC so forks share pages)."""
        if self._pool is None:
            gc.freeze()  # children's GC passes then leave inherited objects alone (no copy-on-write)
            self._pool = self.context.Pool(self.processes)
        return self._pool

    def close(self) -> None:
        """Stop the workers, if any were started."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
            gc.unfreeze()


def run_jobs(jobs: list[ExtractJob], pool: LazyPool | None) -> Iterator[tuple]:
    """Results of :func:`extract_unit` for every job, in completion order.

    The pool's processes take jobs from the front of the list while this process works
    through it from the back, so ``--workers N`` keeps N processes busy with N - 1 children
    and only the children's pixels cross a process boundary.
    """
    if pool is None or pool.processes < 1 or len(jobs) < 2 \
            or sum(len(j.coords) for j in jobs) < MIN_PARALLEL_TILES:
        yield from map(extract_unit, jobs)
        return
    workers = pool.get()
    front, back = 0, len(jobs)
    pending: collections.deque = collections.deque()
    while front < back or pending:
        while front < back and len(pending) < 2 * pool.processes:
            pending.append(workers.apply_async(extract_unit, (jobs[front],)))
            front += 1
        ready = [p for p in pending if p.ready()]
        for p in ready:
            pending.remove(p)
            yield p.get()
        if ready:
            continue
        if front < back:
            back -= 1
            yield extract_unit(jobs[back])
        elif pending:
            yield pending.popleft().get()
