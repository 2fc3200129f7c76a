"""``rckd tile``: whole slides -> h5 tile sets by microns per pixel, resumable and parallel.

Output folder ``<out>/<mpp>mpp_<size>px_<overlap>px/`` holds ``patches/<slide>.h5`` (layout in
:mod:`rckd.data.wsi.h5format`), ``thumbnails/<slide>.jpg``, ``state/<slide>.json`` and
``summary.md``. Every file is written atomically and the state file last; what counts as
finished, and why a finished slide made with other settings stops the run instead of being
replaced, is in :mod:`rckd.data.wsi.outputs`. A slide without tissue gets a state and a summary
line, never an empty tile file. ``--workers N`` uses N processes: with ``--save-images`` they
decode a slide's tiles into shared memory while this process writes the h5 file
(:mod:`rckd.data.wsi.parallel`), otherwise they take whole slides. ``--shard i/n`` takes every
n-th slide of the sorted list.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rckd import __version__
from rckd.config import RunConfig, option, save_config, to_dict
from rckd.data.wsi import h5format
from rckd.data.wsi.extract import local_chunks, make_jobs, release_handles
from rckd.data.wsi.grid import GridGeometry, grid_coords, plan_geometry, select_tiles, tissue_fraction
from rckd.data.wsi.inputs import SlideInput, collect_inputs, parse_shard, shard
from rckd.data.wsi.outputs import SlideOutputs, settings_conflict, verified_state
from rckd.data.wsi.parallel import MIN_PARALLEL_TILES, ExtractPool
from rckd.data.wsi.reader import SlideReader, open_slide, require_mpp, slide_fingerprint
from rckd.data.wsi.report import (now, peak_memory_mib, read_state, render_thumbnail, save_thumbnail,
                                  write_state, write_summary)
from rckd.data.wsi.tissue import TissueMask, TissueParams, detect_tissue, read_thumbnail

__all__ = ["TileConfig", "run_tiling", "run_dir_name", "plan_slide", "SlidePlan", "tile_slide"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TileConfig(RunConfig):
    """Tile whole-slide images by microns per pixel into h5 tile sets (CLAM/TRIDENT compatible)."""

    slides: list[str] = option(default_factory=list, positional=True,
                               help="slide files, folders, glob patterns or CSV files")
    DEFAULTS = {"out": "runs/tiles"}  # output root; a folder per setting is made inside

    target_mpp: float = option(0.5, gt=0, help="microns per pixel of the tiles")
    patch_size: int = option(256, ge=1, help="tile side in pixels at the target mpp")
    overlap: int = option(0, ge=0, help="pixels shared by neighbouring tiles, at the target mpp")
    min_tissue: float = option(0.5, ge=0, le=1, help="minimum fraction of a tile inside the tissue mask")
    tissue_detection: bool = option(True, help="detect tissue (off: tile everything)")
    thumbnail_size: int = option(1024, ge=1, help="longest side of the tissue-detection thumbnail")
    mpp: float | None = option(None, gt=0, help="level-0 mpp for slides whose file has none")
    force_mpp: bool = option(False, help="use --mpp even where the file states an mpp")
    save_images: bool = option(False, help="also store tile pixels in the h5 ('imgs')")
    image_compression: str = option("none", help="compression of stored pixels: none (decoded tissue "
                                    "compresses ~10 %% at more CPU than decoding it took), lzf (h5py's own "
                                    "filter; compresses glass many-fold) or gzip (readable everywhere, "
                                    "~3x lzf's CPU)", choices=("none", "lzf", "gzip"))
    chunk_tiles: int = option(4, ge=1, help="tiles per h5 chunk of stored pixels")
    workers: int = option(1, ge=1, help="worker processes (with --save-images: decoding a slide's tiles, "
                          "this process writing; else: whole slides each)")
    shard: str = option("", help="i/n: process every n-th slide starting at i")
    skip_errors: bool = option(False, help="record a failing slide and go on")
    clam_patch_size: bool = option(False, help="write patch_size as the side read at patch_level, CLAM's "
                                   "meaning, so CLAM's readers cut rckd's tile at any target mpp (default: "
                                   "the output side, TRIDENT's meaning; TRIDENT reads right either way)")
    trident_names: bool = option(False, help="name tile sets <slide>_patches.h5, as TRIDENT's pipeline expects")
    overwrite: bool = option(False, help="replace finished slides, even those made with other settings")
    fast_read: bool = option(True, help="decode tiled TIFF tiles directly (else OpenSlide only)")
    progress: bool = option(True, help="progress bars")


def run_dir_name(cfg: TileConfig) -> str:
    """``0.50mpp_256px_0px``-style folder name (more decimals when 2 would merge settings)."""
    mpp = f"{cfg.target_mpp:.2f}"
    if abs(float(mpp) - cfg.target_mpp) > 1e-9:
        mpp = f"{cfg.target_mpp:g}"
    return f"{mpp}mpp_{cfg.patch_size}px_{cfg.overlap}px"


def _tissue_params(cfg: TileConfig) -> TissueParams:
    return TissueParams(method="auto" if cfg.tissue_detection else "none",
                        thumbnail_size=cfg.thumbnail_size)


OUTPUT_OPTIONS = ("target_mpp", "patch_size", "overlap", "tissue_detection", "thumbnail_size", "min_tissue",
                  "save_images", "image_compression", "chunk_tiles", "clam_patch_size", "trident_names")


def _settings(cfg: TileConfig) -> dict:
    """What a slide's outputs are made with: options (those that change nothing are None), more."""
    settings = {name: getattr(cfg, name) for name in OUTPUT_OPTIONS}
    if not cfg.tissue_detection:
        settings["min_tissue"] = None
    if not cfg.save_images:
        settings.update(image_compression=None, chunk_tiles=None)
    settings.update(tissue_params=dataclasses.asdict(_tissue_params(cfg)),
                    schema_version=h5format.SCHEMA_VERSION)
    return settings


def _check_finished_settings(slides: list[SlideInput], cfg: TileConfig, run_dir: Path) -> None:
    """Stop (one line, before any slide is touched) if a finished slide was made with other settings."""
    if cfg.overwrite:
        return
    settings = _settings(cfg)
    for inp in slides:
        outputs = SlideOutputs.of(run_dir, inp.name, cfg.trident_names)
        why = settings_conflict(read_state(outputs.state), settings, OUTPUT_OPTIONS, *_given_mpp(inp, cfg))
        if why:
            raise ValueError(f"{outputs.state}: finished slide {inp.name!r} {why}; keep it with another "
                             "--out, or replace it with --overwrite")


@dataclasses.dataclass
class SlidePlan:
    """Everything decided before pixels are read: geometry, tissue and kept coordinates."""

    geom: GridGeometry
    coords: np.ndarray
    thumb: np.ndarray
    tissue: TissueMask
    seconds: float


def plan_slide(reader: SlideReader, cfg: TileConfig) -> SlidePlan:
    """Thumbnail, tissue mask, grid and tissue filter of one open slide (no tile pixels read)."""
    t0 = time.perf_counter()
    level0_mpp = require_mpp(reader)
    w0, h0 = reader.dimensions
    thumb = read_thumbnail(reader, cfg.thumbnail_size)
    tissue = detect_tissue(thumb, level0_mpp * w0 / thumb.shape[1], _tissue_params(cfg))
    geom = plan_geometry(level0_mpp, cfg.target_mpp, cfg.patch_size, cfg.overlap, reader.level_downsamples)
    coords = grid_coords(w0, h0, geom)
    if cfg.tissue_detection:
        coords = select_tiles(coords, tissue_fraction(tissue.mask, (w0, h0), coords,
                                                      geom.patch_size_level0), cfg.min_tissue)
    return SlidePlan(geom, coords, thumb, tissue, time.perf_counter() - t0)


def _given_mpp(inp: SlideInput, cfg: TileConfig) -> tuple[float | None, bool]:
    """The mpp supplied for this slide (CSV column, else --mpp) and whether it overrides the file."""
    given = inp.mpp if inp.mpp is not None else cfg.mpp
    return given, bool(given is not None and (inp.mpp is not None or cfg.force_mpp))


def tile_slide(inp: SlideInput, cfg: TileConfig, run_dir: Path, pool=None) -> dict:
    """Tile one slide (or confirm it is finished) and return its state dict."""
    t0 = time.perf_counter()
    paths = SlideOutputs.of(run_dir, inp.name, cfg.trident_names)
    fingerprint = slide_fingerprint(inp.path)
    if not cfg.overwrite:
        done = verified_state(paths, fingerprint, cfg.patch_size, cfg.save_images)
        if done is not None:
            log.info("%s: finished earlier (%d tiles), skipping", inp.name, done.get("n_tiles", 0))
            return {**done, "skipped": True}
    for leftover in paths.remove_leftovers():
        log.info("%s: removed %s, left by an interrupted run", inp.name, leftover.name)
    state = {"name": inp.name, "slide_path": str(inp.path), "label": inp.label, "status": "running",
             "settings": _settings(cfg), "fingerprint": fingerprint, "rckd_version": __version__,
             "started": now()}
    write_state(paths.state, state)
    given, force = _given_mpp(inp, cfg)
    with open_slide(inp.path, fast=cfg.fast_read) as reader:
        state["mpp_source"] = "file" if reader.mpp is not None and not force else "given"
        if given is not None and (reader.mpp is None or force):
            reader.mpp = float(given)
        plan = plan_slide(reader, cfg)
        w0, h0 = reader.dimensions
        attrs = h5format.tile_set_attrs(
            plan.geom, name=inp.name, slide_path=str(inp.path.resolve()), slide_size=(w0, h0),
            fingerprint=state["fingerprint"], level_dimensions=reader.level_dimensions,
            tissue_info=plan.tissue.info, min_tissue=cfg.min_tissue,
            objective_power=getattr(reader, "objective_power", None), clam_patch_size=cfg.clam_patch_size)
        state.update(level0_mpp=plan.geom.level0_mpp, slide_size=[w0, h0], vendor=reader.vendor,
                     read_level=plan.geom.read_level, tissue_fraction=round(plan.tissue.fraction, 4),
                     coords_seconds=round(plan.seconds, 3))
    failed: list = []
    if len(plan.coords) == 0:
        paths.h5.unlink(missing_ok=True)
        status = "no_tissue"
        log.warning("%s: no tissue found (tissue %.1f%% of the slide, min_tissue %.2f); no tile file written",
                    inp.name, 100 * plan.tissue.fraction, cfg.min_tissue)
    else:
        status = "done"
        t_write = time.perf_counter()
        if cfg.save_images:
            failed = _write_with_images(inp, cfg, plan, attrs, paths.h5, pool)
        else:
            h5format.write_tile_set(paths.h5, plan.coords, attrs)
        state["write_seconds"] = round(time.perf_counter() - t_write, 3)
    img = render_thumbnail(plan.thumb, plan.tissue.mask, _kept(plan.coords, failed),
                           plan.geom.patch_size_level0, (w0, h0))
    save_thumbnail(img, paths.thumb)
    seconds = time.perf_counter() - t0
    n = len(plan.coords) - len(failed)
    state.update(status=status, n_tiles=n, seconds=round(seconds, 3),
                 tiles_per_s=round(n / seconds, 1) if seconds > 0 else None, peak_mib=peak_memory_mib(),
                 failed_tiles=[{"x": int(plan.coords[i][0]), "y": int(plan.coords[i][1]), "error": m}
                               for i, m in failed],
                 h5=str(paths.h5.relative_to(run_dir)) if status == "done" else None)
    write_state(paths.state, state)
    return state


def _kept(coords: np.ndarray, failed: list) -> np.ndarray:
    if not failed:
        return coords
    keep = np.ones(len(coords), bool)
    keep[[i for i, _ in failed]] = False
    return coords[keep]


def _write_with_images(inp, cfg, plan, attrs, h5_path: Path, pool: ExtractPool | None) -> list:
    jobs = make_jobs(str(inp.path), _job_mpp(inp, cfg), plan.geom, plan.coords,
                     chunk_tiles=cfg.chunk_tiles, compression=cfg.image_compression,
                     workers=cfg.workers, fast=cfg.fast_read)
    parallel = pool is not None and len(plan.coords) >= MIN_PARALLEL_TILES
    failures: list = []
    bar = tqdm(total=len(plan.coords), desc=inp.name, unit="tile", leave=False,
               disable=None if cfg.progress else True)

    def chunks():
        for index, data, mask, fails in (pool.chunks(jobs) if parallel else local_chunks(jobs)):
            failures.extend(fails)
            bar.update(min(cfg.chunk_tiles, len(plan.coords) - index * cfg.chunk_tiles))
            yield index, data, mask

    try:
        h5format.write_tile_set(h5_path, plan.coords, attrs, chunks=chunks(), image_size=cfg.patch_size,
                                chunk_tiles=cfg.chunk_tiles, compression=cfg.image_compression)
    finally:
        bar.close()
        release_handles()
    if failures:
        failures.sort()
        log.warning("%s: %d tiles could not be read; they are left out (see state)", inp.name, len(failures))
        h5format.drop_tiles(h5_path, [i for i, _ in failures])
    return failures


def _job_mpp(inp: SlideInput, cfg: TileConfig) -> float | None:
    return _given_mpp(inp, cfg)[0]


def _safe_tile(args) -> dict:
    """Worker entry for slide-parallel runs: never raises, returns a state dict."""
    inp, cfg, run_dir = args
    try:
        return tile_slide(inp, cfg, run_dir)
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        return _failed_state(inp, cfg, run_dir, exc)


def _failed_state(inp: SlideInput, cfg: TileConfig, run_dir: Path, exc: BaseException) -> dict:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if str(inp.path) not in msg:
        msg = f"{inp.path}: {msg}"
    state = {"name": inp.name, "slide_path": str(inp.path), "status": "failed", "error": msg,
             "settings": _settings(cfg), "n_tiles": 0}
    write_state(SlideOutputs.of(run_dir, inp.name, cfg.trident_names).state, state)
    return state


def run_tiling(cfg: TileConfig) -> int:
    """Tile every input slide; return 0 when all succeeded, 1 when some failed (--skip-errors)."""
    if not cfg.slides:
        raise ValueError("no slides given (pass files, folders, globs or a CSV)")
    index, count = parse_shard(cfg.shard)
    every = collect_inputs(cfg.slides)
    slides = shard(every, index, count)
    if not slides:
        log.warning("shard %s has no slides (%d slides in all)", cfg.shard, len(every))
    run_dir = Path(cfg.out) / run_dir_name(cfg)
    _check_finished_settings(slides, cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / (f"config_shard{index}of{count}.yaml" if count > 1 else "config.yaml"))
    log.info("tiling %d slides into %s (%s)", len(slides), run_dir, to_dict(cfg)["shard"] or "no shard")
    slide_parallel = cfg.workers > 1 and not cfg.save_images and len(slides) > 1
    pool = None
    if cfg.save_images and cfg.workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        pool = ExtractPool(cfg.workers, (cfg.chunk_tiles, cfg.patch_size, cfg.patch_size, 3))
    states: list[dict] = []
    try:
        bar = tqdm(total=len(slides), desc="slides", unit="slide", disable=None if cfg.progress else True)
        if slide_parallel:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with ctx.Pool(cfg.workers) as slide_pool:
                for state in slide_pool.imap(_safe_tile, [(s, cfg, run_dir) for s in slides]):
                    states.append(_check(state, cfg))
                    bar.update(1)
        else:
            for inp in slides:
                try:
                    state = tile_slide(inp, cfg, run_dir, pool)
                except Exception as exc:  # noqa: BLE001 - recorded, then re-raised unless skipping
                    state = _failed_state(inp, cfg, run_dir, exc)
                states.append(_check(state, cfg))
                bar.update(1)
        bar.close()
    finally:
        if pool is not None:
            pool.close()
        write_summary(run_dir)
    _print_table(states, run_dir)
    return 1 if any(s["status"] == "failed" for s in states) else 0


def _check(state: dict, cfg: TileConfig) -> dict:
    if state["status"] == "failed":
        if not cfg.skip_errors:
            raise ValueError(state["error"])
        log.error("%s (skipped; --skip-errors)", state["error"])
    return state


def _print_table(states: list[dict], run_dir: Path) -> None:
    print(f"{'slide':40s} {'status':10s} {'tiles':>7s} {'seconds':>8s}")
    for s in states:
        status = s["status"] + (" (kept)" if s.get("skipped") else "")
        print(f"{s['name'][:40]:40s} {status:10s} {s.get('n_tiles', 0):7d} {s.get('seconds') or 0:8.2f}")
    print(f"outputs and summary.md in {run_dir}")
