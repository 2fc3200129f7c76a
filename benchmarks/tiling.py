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
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rckd.data.wsi.pipeline import TileConfig, plan_slide, run_dir_name, run_tiling
from rckd.data.wsi.reader import open_slide

CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi" / "CMU-1-Small-Region.svs"


def coords_seconds(path: Path, cfg: TileConfig) -> tuple[float, int]:
    t0 = time.perf_counter()
    with open_slide(path) as reader:
        plan = plan_slide(reader, cfg)
    return time.perf_counter() - t0, len(plan.coords)


def pipeline_rate(path: Path, cfg: TileConfig, out: Path) -> tuple[float, float]:
    """(end-to-end tiles/s of the whole command, tiles/s of the pixel + h5-writing phase)."""
    cfg = dataclasses.replace(cfg, slides=[str(path)], out=str(out), overwrite=True, progress=False)
    t0 = time.perf_counter()
    run_tiling(cfg)
    dt = time.perf_counter() - t0
    state = json.loads((out / run_dir_name(cfg) / "state" / f"{path.stem}.json").read_text())
    return state["n_tiles"] / dt, state["n_tiles"] / state["write_seconds"]


def naive_rate(path: Path, cfg: TileConfig) -> float:
    with open_slide(path) as reader:
        plan = plan_slide(reader, cfg)
    import openslide
    slide = openslide.OpenSlide(str(path))
    g = plan.geom
    t0 = time.perf_counter()
    for x, y in plan.coords:  # CLAM style: one read_region per tile
        img = slide.read_region((int(x), int(y)), g.read_level, (g.read_size, g.read_size)).convert("RGB")
        if g.read_size != g.patch_size:
            img = img.resize((g.patch_size, g.patch_size), Image.Resampling.BOX)
        np.asarray(img)
    dt = time.perf_counter() - t0
    slide.close()
    return len(plan.coords) / dt


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
        best["naive"] = max(best.get("naive", 0), naive_rate(path, cfg))
        for w in (1, 2):
            for comp in ("gzip", "none"):
                e2e, px = pipeline_rate(path, dataclasses.replace(cfg, save_images=True, workers=w,
                                                                  image_compression=comp), work / f"{name}_{w}_{comp}")
                for key, rate in ((f"w{w}_{comp}", px), (f"e2e_w{w}_{comp}", e2e)):
                    best[key] = max(best.get(key, 0), rate)
        mpix, tps = decode_rate(path, cfg)
        best["decode_mpix"] = max(best.get("decode_mpix", 0), mpix)
        best["decode_tiles"] = max(best.get("decode_tiles", 0), tps)
        print(f"{name} repeat {r + 1}/{repeats}: {best}", flush=True)
    best["tiles"] = n
    return best


def render(results: dict, meta: dict) -> str:
    lines = ["# Tiling benchmark", "",
             f"Run {meta['date']} on {meta['machine']}; {meta['cpus']} CPU cores, shared with other jobs "
             f"(load average {meta['load_before']} before, {meta['load_after']} after). Settings: "
             f"{meta['settings']}. Each figure is the best of {meta['repeats']} interleaved repeats; "
             "compare ratios within a row, not absolute numbers across machines.", "",
             "| slide | size (px) | tiles | coords (s) | naive 1-proc | rckd w1 gzip | rckd w2 gzip "
             "| rckd w1 raw | rckd w2 raw | **w2 gzip / naive** | w2 raw / naive | end-to-end w2 gzip "
             "| JPEG decode limit, 1 core |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['size']} | {r['tiles']} | {r['coords_s']:.2f} | {r['naive']:.0f} | "
                     f"{r['w1_gzip']:.0f} | {r['w2_gzip']:.0f} | {r['w1_none']:.0f} | {r['w2_none']:.0f} | "
                     f"**{r['w2_gzip'] / r['naive']:.2f}x** | {r['w2_none'] / r['naive']:.2f}x | "
                     f"{r['e2e_w2_gzip']:.0f} | {r['decode_tiles']:.0f} ({r['decode_mpix']:.0f} MPix/s) |")
    lines.append("")
    lines.append("Rates in output tiles per second.")
    lines += ["", "- *coords*: open + bounded thumbnail + tissue mask + grid + tissue filter, no pixels.",
              "- *rckd wN gzip/raw*: `rckd tile --save-images --workers N --image-compression gzip|none`, "
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
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rckd_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    big = work / f"synthetic_{args.size}.tiff"
    if not big.exists():
        from rckd.data.synthetic import write_synthetic_slide
        t0 = time.perf_counter()
        write_synthetic_slide(big, args.size, args.size, mpp=0.5, seed=0)
        print(f"wrote {big} in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = TileConfig(target_mpp=0.5, patch_size=256, overlap=0, min_tissue=0.5)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "repeats": args.repeats,
            "settings": "target 0.5 mpp, 256 px, overlap 0, min_tissue 0.5, default tissue detection"}
    results = {}
    for name, path in (("CMU-1-Small-Region.svs (real, 0.499 mpp)", CMU),
                       (f"synthetic pyramidal TIFF {args.size}x{args.size} (0.5 mpp, JPEG)", big)):
        with open_slide(path) as r:
            size = "x".join(map(str, r.dimensions))
        results[name] = {**bench(name.split()[0], path, cfg, args.repeats, work), "size": size}
    meta["load_after"] = os.getloadavg()[0]
    text = render(results, meta)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
