"""Tiling benchmark: coordinates, extraction with workers, the naive loop and the JPEG-decode limit.

Measured in one run, on the real CMU-1-Small-Region.svs and on a generated pyramidal slide of at
least 20,000 x 20,000 pixels (``rckd.data.synthetic.write_synthetic_slide``):

- seconds for coordinates only (open, bounded thumbnail, tissue mask, grid, tissue filter);
- tiles/s of ``rckd tile --save-images`` end to end (coordinates, pixels, compression, h5 write,
  thumbnail, state), with 1 and 2 worker processes;
- tiles/s of the naive CLAM-style loop: one OpenSlide ``read_region`` per tile, converted to RGB
  and resized, in one process, pixels only (nothing written);
- the pure JPEG-decode rate of the same slide's read level (imagecodecs on the raw tiles, one
  process), expressed in output tiles/s: the ceiling for one core.

Every figure is the best of ``--repeats`` runs, interleaved so machine noise hits all variants.
Usage: ``python benchmarks/tiling.py --out benchmarks/tiling.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rckd.data.wsi.pipeline import TileConfig, plan_slide, run_dir_name, run_tiling
from rckd.data.wsi.reader import open_slide

CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi" / "CMU-1-Small-Region.svs"


PIPELINE_SIZES: dict[tuple[str, str], int] = {}  # (slide file, compression) -> h5 bytes


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (worker pools)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def coords_seconds(path: Path, cfg: TileConfig) -> tuple[float, int]:
    t0 = time.perf_counter()
    with open_slide(path) as reader:
        plan = plan_slide(reader, cfg)
    return time.perf_counter() - t0, len(plan.coords)


def pipeline_rate(path: Path, cfg: TileConfig, out: Path) -> tuple[float, float, float]:
    """Tiles/s of the whole command, tiles/s of its pixel + h5-writing phase, tiles per CPU-second."""
    cfg = dataclasses.replace(cfg, slides=[str(path)], out=str(out), overwrite=True, progress=False)
    t0, c0 = time.perf_counter(), cpu_seconds()
    run_tiling(cfg)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    state = json.loads((out / run_dir_name(cfg) / "state" / f"{path.stem}.json").read_text())
    n = state["n_tiles"]
    PIPELINE_SIZES[(path.name, cfg.image_compression)] = (out / run_dir_name(cfg) / "patches" / f"{path.stem}.h5").stat().st_size
    return n / dt, n / state["write_seconds"], n / cpu


def naive_rate(path: Path, cfg: TileConfig) -> tuple[float, float]:
    """Tiles/s and tiles per CPU-second of the CLAM-style loop (pixels only)."""
    with open_slide(path) as reader:
        plan = plan_slide(reader, cfg)
    import openslide
    slide = openslide.OpenSlide(str(path))
    g = plan.geom
    t0, c0 = time.perf_counter(), cpu_seconds()
    for x, y in plan.coords:  # CLAM style: one read_region per tile
        img = slide.read_region((int(x), int(y)), g.read_level, (g.read_size, g.read_size)).convert("RGB")
        if g.read_size != g.patch_size:
            img = img.resize((g.patch_size, g.patch_size), Image.Resampling.BOX)
        np.asarray(img)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    slide.close()
    return len(plan.coords) / dt, len(plan.coords) / cpu


def decode_rate(path: Path, cfg: TileConfig) -> tuple[float, float]:
    """(megapixels/s, output tiles/s) of decoding every stored tile of the read level."""
    import tifffile

    with open_slide(path) as reader:
        plan = plan_slide(reader, cfg)
        level_dims = reader.level_dimensions[plan.geom.read_level]
    with tifffile.TiffFile(str(path)) as tif:
        page = next(p for s in tif.series for lv in s.levels for p in [lv.keyframe]
                    if (p.imagewidth, p.imagelength) == level_dims)
        fh = tif.filehandle
        data = []
        for off, cnt in zip(page.dataoffsets, page.databytecounts):
            fh.seek(off)
            data.append(fh.read(cnt))
        t0 = time.perf_counter()
        for i, d in enumerate(data):
            page.decode(d, i, jpegtables=page.jpegtables)
        dt = time.perf_counter() - t0
    mpix = len(data) * page.tilewidth * page.tilelength / 1e6
    return mpix / dt, mpix * 1e6 / plan.geom.read_size ** 2 / dt


def bench(name: str, path: Path, cfg: TileConfig, repeats: int, work: Path) -> dict:
    best: dict[str, float] = {}
    n = 0
    for r in range(repeats):
        sec, n = coords_seconds(path, cfg)
        best["coords_s"] = min(best.get("coords_s", 1e9), sec)
        rate, per_cpu = naive_rate(path, cfg)
        best["naive"] = max(best.get("naive", 0), rate)
        best["cpu_naive"] = max(best.get("cpu_naive", 0), per_cpu)
        for w in (1, 2):
            for comp in ("lzf", "gzip", "none"):
                e2e, px, per_cpu = pipeline_rate(path, dataclasses.replace(
                    cfg, save_images=True, workers=w, image_compression=comp), work / f"{name}_{w}_{comp}")
                for key, rate in ((f"w{w}_{comp}", px), (f"e2e_w{w}_{comp}", e2e), (f"cpu_w{w}_{comp}", per_cpu)):
                    best[key] = max(best.get(key, 0), rate)
        mpix, tps = decode_rate(path, cfg)
        best["decode_mpix"] = max(best.get("decode_mpix", 0), mpix)
        best["decode_tiles"] = max(best.get("decode_tiles", 0), tps)
        print(f"{name} repeat {r + 1}/{repeats}: {best}", flush=True)
    best["tiles"] = n
    for comp in ("lzf", "gzip", "none"):
        best[f"mib_{comp}"] = PIPELINE_SIZES[(path.name, comp)] / 2**20
    return best


def render(results: dict, meta: dict) -> str:
    lines = ["# Tiling benchmark", "",
             f"Run {meta['date']} on {meta['machine']}; {meta['cpus']} CPU cores, shared with other jobs "
             f"(load average {meta['load_before']:.1f} before, {meta['load_after']:.1f} after). Settings: "
             f"{meta['settings']}. Each figure is the best of {meta['repeats']} interleaved repeats; "
             "compare ratios within a row, not absolute numbers across machines.", "",
             "| slide | size (px) | tiles | coords (s) | naive 1-proc | rckd w1 lzf | rckd w2 lzf "
             "| rckd w2 gzip | rckd w2 raw | **w2 lzf / naive** | w2 gzip / naive | w2 raw / naive "
             "| end-to-end w2 lzf | JPEG decode limit, 1 core |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        n = r["naive"]
        lines.append(f"| {name} | {r['size']} | {r['tiles']} | {r['coords_s']:.2f} | {n:.0f} | "
                     f"{r['w1_lzf']:.0f} | {r['w2_lzf']:.0f} | {r['w2_gzip']:.0f} | {r['w2_none']:.0f} | "
                     f"**{r['w2_lzf'] / n:.2f}x** | {r['w2_gzip'] / n:.2f}x | {r['w2_none'] / n:.2f}x | "
                     f"{r['e2e_w2_lzf']:.0f} | {r['decode_tiles']:.0f} ({r['decode_mpix']:.0f} MPix/s) |")
    lines += ["", "Rates in output tiles per second (wall clock).", "",
              "Work per CPU-second (user + system time of the process and its worker processes; "
              "independent of how busy the machine is):", "",
              "| slide | naive | rckd w1 lzf | rckd w2 lzf | rckd w1 gzip | rckd w2 gzip | rckd w1 raw "
              "| rckd w2 raw |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['cpu_naive']:.0f} | {r['cpu_w1_lzf']:.0f} | {r['cpu_w2_lzf']:.0f} | "
                     f"{r['cpu_w1_gzip']:.0f} | {r['cpu_w2_gzip']:.0f} | {r['cpu_w1_none']:.0f} | "
                     f"{r['cpu_w2_none']:.0f} |")
    lines.append("")
    lines.append("(rckd figures here are whole commands: coordinates, thumbnail and writing included.)")
    lines += ["", "Tile-set size with stored pixels (MiB): ", "",
              "| slide | lzf (default) | gzip | raw |", "|---|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mib_lzf']:.1f} | {r['mib_gzip']:.1f} | {r['mib_none']:.1f} |")
    lines += ["", "## Reading the figures", "",
              "- The machine schedules CPU fairly between *sessions* (Linux autogroup), not processes: "
              "while other sessions keep both cores busy, a second worker process does not get this "
              "session more CPU, so `w2` can only beat `w1` when the machine has idle capacity. The "
              "load average at the top says how busy it was; the CPU-second table is the figure that "
              "does not depend on it.",
              "- Compressing stored pixels costs more CPU than decoding them, and decoded H&E tissue "
              "compresses only ~8 % (lzf) to ~12 % (gzip): the default lzf stores such chunks raw "
              "(filter skipped) and compresses the ones that pay (glass, pale or blank areas); gzip "
              "compresses everything and is there for HDF5 tools without the lzf filter.",
              "- Pixels come from the file's own tiles decoded by imagecodecs (Aperio, generic TIFF), "
              "row-major strips cut into tiles; the naive loop pays OpenSlide's per-call work (cairo "
              "compositing, premultiplied RGBA, a PIL image) for every tile.", ""]
    lines += ["", "- *coords*: open + bounded thumbnail + tissue mask + grid + tissue filter, no pixels.",
              "- *rckd wN lzf/gzip/raw*: `rckd tile --save-images --workers N --image-compression "
              "lzf|gzip|none` (lzf is the default), "
              "the extraction phase as the command records it (`write_seconds` in the state file): "
              "pixel reads, resizing, chunk compression in the workers and the h5 write.",
              "- *end-to-end*: the whole command for that slide (process pool, coordinates, extraction, "
              "thumbnail, state, summary) divided into its tile count.",
              "- *naive*: one OpenSlide `read_region` per tile + RGB conversion (+ resize), one process, "
              "nothing written: the CLAM-style loop.",
              "- *JPEG decode limit*: imagecodecs decoding every stored tile of the read level, in one "
              "process, converted to output tiles/s (decoded pixels / read_size^2).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/tiling.md")
    ap.add_argument("--size", type=int, default=20000, help="side of the generated slide")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="keep the generated slide here between runs")
    ap.add_argument("--tiles-out", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the tile sets are written (a RAM disk keeps disk noise out)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rckd_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    tiles_out = Path(tempfile.mkdtemp(prefix="rckd_bench_tiles_", dir=args.tiles_out))
    big = work / f"synthetic_{args.size}.tiff"
    if not big.exists():
        from rckd.data.synthetic import write_synthetic_slide
        t0 = time.perf_counter()
        write_synthetic_slide(big, args.size, args.size, mpp=0.5, seed=0)
        print(f"wrote {big} in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = TileConfig(target_mpp=0.5, patch_size=256, overlap=0, min_tissue=0.5)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "repeats": args.repeats,
            "settings": "target 0.5 mpp, 256 px, overlap 0, min_tissue 0.5, default tissue detection; "
                        f"tile sets written under {args.tiles_out or tempfile.gettempdir()}"}
    results = {}
    for name, path in (("CMU-1-Small-Region.svs (real, 0.499 mpp)", CMU),
                       (f"synthetic pyramidal TIFF {args.size}x{args.size} (0.5 mpp, JPEG)", big)):
        with open_slide(path) as r:
            size = "x".join(map(str, r.dimensions))
        try:
            results[name] = {**bench(name.split()[0], path, cfg, args.repeats, tiles_out), "size": size}
        finally:
            shutil.rmtree(tiles_out, ignore_errors=True)
    meta["load_after"] = os.getloadavg()[0]
    text = render(results, meta)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
