"""Synthetic world throughput: tiles/s of ``SyntheticWorld.tile`` and the time to write a slide.

    python benchmarks/synthetic.py                       # writes benchmarks/synthetic.md
    python benchmarks/synthetic.py --tiles 100 --slide 8000 --out /tmp/synthetic.md

One process, one thread (``torch.set_num_threads(1)``, BLAS limited to one thread). Tiles/s is
reported as wall-clock and as CPU time (``time.process_time``): on a shared machine the CPU
figure is the one-core rate, the wall figure what this run got. The slide is written with
``write_synthetic_slide`` (JPEG q90, 256 px tiles, full pyramid) to a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from rckd.data.synthetic import SyntheticWorld, write_synthetic_slide
from rckd.io import atomic_write_text


def tiles_per_s(n: int, size: int, mpp: float) -> tuple[float, float]:
    """(wall, cpu) tiles per second over ``n`` tiles after one warm-up tile."""
    world = SyntheticWorld(seed=0, size=size, mpp=mpp)
    world.tile(0)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, n + 1):
        world.tile(i)
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def slide_seconds(side: int) -> tuple[float, float, float]:
    """(wall s, cpu s, MB) to write a side x side synthetic slide."""
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), time.process_time()
        path = write_synthetic_slide(Path(tmp) / "slide.tif", side, side, mpp=0.5, seed=0)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        return wall, cpu, path.stat().st_size / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=200, help="tiles to time per setting")
    ap.add_argument("--slide", type=int, default=20000, help="slide side in pixels (0: skip)")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    lines = ["# Synthetic world benchmark", "",
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
             f"{os.cpu_count()} logical CPUs (shared; load average "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}), Python "
             f"{platform.python_version()}, one process, one thread.", "",
             "| what | wall | CPU time |", "|---|---|---|"]
    for size, mpp in ((256, 0.5), (256, 0.25)):
        wall, cpu = tiles_per_s(args.tiles, size, mpp)
        line = (f"| {args.tiles} tiles {size}x{size} at {mpp} um/px | {wall:.1f} tiles/s "
                f"| {cpu:.1f} tiles/s |")
        print(line)
        lines.append(line)
    if args.slide:
        wall, cpu, mb = slide_seconds(args.slide)
        line = (f"| write {args.slide}x{args.slide} slide (JPEG, {mb:.0f} MB) | {wall:.1f} s "
                f"| {cpu:.1f} s |")
        print(line)
        lines.append(line)
    lines += ["", "CPU time (`time.process_time`) is the rate of one core that the process has to "
              "itself; wall is what this run got on the shared machine at the load above. "
              "Target: >= 50 tiles/s of 256x256 on one core; a 20k x 20k slide well under a "
              "minute."]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
