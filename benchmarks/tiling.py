"""Tiling benchmark: ``rckd tile`` as a whole command against the naive loop and the decode limit.

Measured in one run, on a 16,384 x 16,384 pyramidal TIFF of real H&E pixels (the CMU slide
mirrored edge to edge, 256-px JPEG tiles at quality 90, 0.5 um/px, written by tifffile into
``--workdir`` once; never committed):

- *naive*: one OpenSlide ``read_region`` per tile over the same coordinates, converted to RGB,
  in one process, nothing written (the CLAM-style loop);
- *whole command*: ``rckd tile SLIDE --target-mpp 0.5 --patch-size 256 --no-tissue-detection
  --save-images --workers 2`` started as a new process, wall clock, start-up included;
- *per slide*: that command's own time for the slide, from its state file (open, thumbnail,
  extraction, h5 write, state);
- *start-up*: ``rckd tile --help`` wall clock (interpreter and imports);
- *decode limit*: imagecodecs decoding every stored tile of the read level from memory, in
  1 and in 2 processes: what reading the pixels cannot beat on this machine;
- *coordinates*: open, thumbnail, tissue mask, grid and tissue filter of a 20,000 x 20,000
  synthetic slide, no pixels.

Rates are output tiles per second. Figures are the best of ``--repeats`` rounds, the variants
interleaved within each round so machine noise hits all of them; compare them as ratios.
Usage: ``python benchmarks/tiling.py --out benchmarks/tiling.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CMU = Path(os.environ.get("RCKD_DATA", REPO.parent / "shared" / "data")) / "wsi" / "CMU-1-Small-Region.svs"
COMMAND = ["--target-mpp", "0.5", "--patch-size", "256", "--no-tissue-detection", "--save-images",
           "--workers", "2"]


def write_he_slide(path: Path, size: int, source: Path = CMU) -> Path:
    """A pyramidal JPEG TIFF (0.5 um/px) of ``source``'s level 0 mirrored to ``size`` x ``size``."""
    import openslide

    from rckd.data.wsi.tiff import write_pyramid

    with openslide.OpenSlide(str(source)) as slide:
        he = np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
    mirrored = np.pad(he, ((0, size - he.shape[0]), (0, size - he.shape[1]), (0, 0)), mode="symmetric")
    return write_pyramid(path, mirrored, mpp=0.5)


def children_cpu() -> float:
    """User + system CPU seconds of reaped child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rckd_command() -> list[str]:
    """The ``rckd`` console script beside this interpreter, else ``python -m rckd.cli``."""
    script = Path(sys.executable).with_name("rckd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rckd.cli"]


def whole_command(slide: Path, out: Path, extra: list[str] = ()) -> dict:
    """Run ``rckd tile`` on ``slide`` as a new process; wall and CPU seconds, its state and file size."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = rckd_command() + ["tile", str(slide), *COMMAND, *extra, "--out", str(out)]
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    run = next(out.iterdir())
    state = json.loads((run / "state" / f"{slide.stem}.json").read_text())
    size = (run / "patches" / f"{slide.stem}.h5").stat().st_size
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "slide": state["seconds"], "tiles": state["n_tiles"], "bytes": size}


def startup_seconds() -> float:
    """Wall clock of ``rckd tile --help``: interpreter start and imports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    subprocess.run(rckd_command() + ["tile", "--help"], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def naive_rate(slide: Path, coords: np.ndarray, size: int) -> float:
    """Tiles/s of one OpenSlide read_region per tile, RGB, one process."""
    import openslide

    with openslide.OpenSlide(str(slide)) as s:
        t0 = time.perf_counter()
        for x, y in coords:
            np.asarray(s.read_region((int(x), int(y)), 0, (size, size)).convert("RGB"))
        return len(coords) / (time.perf_counter() - t0)


def _decode_part(args) -> tuple[int, float]:
    """Decode every ``step``-th stored tile of level 0 from ``first``, from memory; (count, seconds)."""
    path, first, step = args
    import imagecodecs
    import tifffile
    from tifffile.tifffile import jpeg_decode_colorspace

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        fh = tif.filehandle
        data = []
        for offset, count in list(zip(page.dataoffsets, page.databytecounts))[first::step]:
            fh.seek(offset)
            data.append(fh.read(count))
        cs, out_cs = jpeg_decode_colorspace(page.photometric, page.planarconfig, page.extrasamples, page.is_jfif)
        out = np.empty((page.tilelength, page.tilewidth, 3), np.uint8)
        t0 = time.perf_counter()
        for d in data:  # the cheapest decode there is: libjpeg-turbo into one reused buffer
            imagecodecs.jpeg8_decode(d, tables=page.jpegtables, colorspace=cs, outcolorspace=out_cs, out=out)
        return len(data), time.perf_counter() - t0


def decode_rate(slide: Path, processes: int) -> float:
    """Stored 256-px tiles decoded per second with ``processes`` processes (each its share)."""
    if processes == 1:
        n, dt = _decode_part((str(slide), 0, 1))
        return n / dt
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.map(_decode_part, [(str(slide), i, processes) for i in range(processes)])
    return sum(n for n, _ in parts) / max(dt for _, dt in parts)


def coords_seconds(slide: Path) -> float:
    """Seconds to plan a slide (default tissue detection): coordinates only."""
    from rckd.data.wsi.pipeline import TileConfig, plan_slide
    from rckd.data.wsi.reader import open_slide

    t0 = time.perf_counter()
    with open_slide(slide) as reader:
        plan_slide(reader, TileConfig(target_mpp=0.5, patch_size=256))
    return time.perf_counter() - t0


def bench(slide: Path, big: Path, tiles_out: Path, repeats: int) -> dict:
    """Best of ``repeats`` interleaved rounds of every figure."""
    from rckd.data.wsi.grid import grid_coords, plan_geometry

    coords = grid_coords(16384, 16384, plan_geometry(0.5, 0.5, 256))
    best: dict = {}

    def keep(key, value, better=max):
        best[key] = better(best.get(key, value), value)

    for r in range(repeats):
        keep("naive", naive_rate(slide, coords, 256))
        for name, extra in (("rckd", []), ("rckd_lzf", ["--image-compression", "lzf"])):
            res = whole_command(slide, tiles_out / name, extra)
            assert res["tiles"] == len(coords), res
            keep(f"{name}_wall", res["wall"], min)
            keep(f"{name}_slide", res["slide"], min)
            keep(f"{name}_cpu", res["cpu"], min)
            best[f"{name}_mib"] = res["bytes"] / 2 ** 20
        keep("startup", startup_seconds(), min)
        keep("decode2", decode_rate(slide, 2))
        keep("decode1", decode_rate(slide, 1))
        keep("coords20k", coords_seconds(big), min)
        print(f"round {r + 1}/{repeats}: {best}", flush=True)
    best["tiles"] = len(coords)
    return best


def render(r: dict, meta: dict) -> str:
    n = r["tiles"]
    naive = r["naive"]
    rate = {k: n / r[f"{k}_wall"] for k in ("rckd", "rckd_lzf")}
    slide_rate = {k: n / r[f"{k}_slide"] for k in ("rckd", "rckd_lzf")}

    def row(what, tiles_s, seconds, note=""):
        return f"| {what} | {tiles_s:,.0f} | {seconds:.2f} | {tiles_s / naive:.2f}x | {note} |"

    cmd = "`rckd tile SLIDE " + " ".join(COMMAND) + "`"
    whole, per_slide = rate["rckd"] / naive, slide_rate["rckd"] / r["decode2"]
    per_slide_strict = slide_rate["rckd"] / (2 * r["decode1"])  # as if 2 processes scaled perfectly
    lines = [
        "# Tiling benchmark", "",
        f"Run {meta['date']} on {meta['machine']}, {meta['cpus']} CPU cores shared with other work; "
        f"load average {meta['load_before']:.2f} before, {meta['load_after']:.2f} after "
        f"(1-minute `uptime` figures). Best of {meta['repeats']} interleaved rounds; compare as ratios. "
        f"Tile sets written to {meta['tiles_out']}.{' ' + meta['note'] if meta['note'] else ''}", "",
        f"Slide: {n:,} tiles of 256 px at 0.5 um/px from a 16,384 x 16,384 pyramidal TIFF of real H&E "
        "(CMU-1-Small-Region mirrored, 256-px JPEG tiles, q90, tifffile-written); every tile kept "
        "(`--no-tissue-detection`).", "",
        "| what | tiles/s | seconds | vs naive | note |", "|---|---:|---:|---:|---|",
        row("naive loop: one OpenSlide `read_region` per tile, 1 process", naive, n / naive,
            "pixels only, nothing written"),
        row(f"**{cmd}**, whole command", rate["rckd"], r["rckd_wall"],
            f"start-up included; {r['rckd_cpu']:.2f} CPU-s; h5 {r['rckd_mib']:.0f} MiB"),
        row("&nbsp;&nbsp;its per-slide time (state file)", slide_rate["rckd"], r["rckd_slide"],
            f"{100 * per_slide:.0f} % of the 2-process decode limit, {100 * per_slide_strict:.0f} % of "
            "twice the 1-process one"),
        f"| &nbsp;&nbsp;start-up: `rckd tile --help` | | {r['startup']:.2f} | | interpreter and imports |",
        row("same command with `--image-compression lzf`, whole command", rate["rckd_lzf"], r["rckd_lzf_wall"],
            f"per slide {r['rckd_lzf_slide']:.2f} s; {r['rckd_lzf_cpu']:.2f} CPU-s; "
            f"h5 {r['rckd_lzf_mib']:.0f} MiB"),
        row("JPEG decode limit, 2 processes", r["decode2"], n / r["decode2"], "imagecodecs, from memory"),
        row("JPEG decode limit, 1 process", r["decode1"], n / r["decode1"], ""), "",
        f"Coordinates of a 20,000 x 20,000 synthetic slide (open, thumbnail, tissue mask, grid, filter): "
        f"**{r['coords20k']:.2f} s**.", "",
        "Targets (issue 14): whole command >= 2.5x naive (moonshot 3x): "
        f"**{whole:.2f}x**; per-slide >= 40 % of the 2-process decode limit: **{100 * per_slide:.0f} %** "
        f"({100 * per_slide_strict:.0f} % of twice the 1-process rate; two decoding processes reached "
        f"{r['decode2'] / r['decode1']:.2f}x one here); coordinates of a 20k x 20k slide < 2 s: "
        f"**{r['coords20k']:.2f} s**.", "",
        "How rckd gets there: the stored JPEG tiles are decoded by imagecodecs straight into their "
        "place in shared memory by the worker processes (a tile that is exactly one stored tile is "
        "never copied), tiles are read in the slide's own row-major tile order, and the parent only "
        "writes finished chunks (`write_direct_chunk`). Pixels are stored raw by default: decoded "
        "tissue compresses by ~10 % at more CPU than decoding it took; `--image-compression lzf` "
        "compresses glass many-fold and costs the CPU shown in its row.", "",
        "Start-up is the part of the whole command that is not tiling: what `import rckd` and the "
        "command line import before any slide is opened.", "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/tiling.md")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=str(REPO / "runs" / "bench_tiling"),
                    help="where the generated slides are kept between runs (git-ignored)")
    ap.add_argument("--note", default="", help="a sentence about the machine's state, put in the table")
    ap.add_argument("--tiles-out", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where tile sets are written (a RAM disk keeps disk write-back out)")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    slide, big = work / "he_16384.tiff", work / "synthetic_20000.tiff"
    if not slide.exists():
        write_he_slide(slide, 16384)
    if not big.exists():
        from rckd.data.synthetic import write_synthetic_slide

        write_synthetic_slide(big, 20000, 20000, mpp=0.5, seed=0)
    tiles_out = Path(tempfile.mkdtemp(prefix="rckd_bench_tiles_", dir=args.tiles_out))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "repeats": args.repeats,
            "tiles_out": args.tiles_out or tempfile.gettempdir(), "note": args.note}
    try:
        results = bench(slide, big, tiles_out, args.repeats)
    finally:
        shutil.rmtree(tiles_out, ignore_errors=True)
    meta["load_after"] = os.getloadavg()[0]
    text = render(results, meta)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
