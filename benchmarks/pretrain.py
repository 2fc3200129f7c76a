"""Pretraining throughput: images/s and peak memory per method x backbone x input size.

The data path is the real one: a synthetic slide is tiled by ``rckd tile --save-images`` into an
h5 tile set (pixels stored, lzf), read lazily by DataLoader workers (``H5TileDataset``); RCKD
reads its targets from an h5 response cache (:class:`rckd.pretrain.cache.CachedResponses`,
filled here with a cheap hematoxylin threshold: the teacher's cost is not part of the student's
step, as with ``rckd teacher predict``). Each configuration runs in its own process through
:func:`rckd.pretrain.run.pretrain` (augmentation on the device included); the first ``--warmup``
steps are excluded. Reported separately: the DataLoader alone (same workers and batch, no
model) and the fraction of the step spent waiting for data.

    python benchmarks/pretrain.py --device cpu --threads 1 --out benchmarks/pretrain.md
    python benchmarks/pretrain.py --device cuda --precision bf16 --batch-size 256 --workers 12 \\
        --steps 40 --warmup 10 --out benchmarks/pretrain_gpu.md        # see benchmarks/README.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def make_data(work: Path, size: int, n_min: int) -> tuple[Path, Path]:
    """An h5 tile set of >= ``n_min`` tiles of ``size`` px at 0.5 um/px, and its response cache."""
    import h5py

    from rckd.data.augment import rgb_to_hed, to_float
    from rckd.data.synthetic import write_synthetic_slide
    from rckd.data.tiles import H5TileDataset
    from rckd.data.wsi.pipeline import TileConfig, run_tiling

    tiles, cache = work / f"tiles_{size}", work / f"responses_{size}.h5"
    if cache.is_file():
        return tiles, cache
    side = size * int((2 * n_min) ** 0.5 + 2)  # tissue covers roughly half the slide
    slide = write_synthetic_slide(work / f"slide_{size}.tif", side, side, mpp=0.5, seed=1)
    run_tiling(TileConfig(out=str(tiles), slides=[str(slide)], target_mpp=0.5, patch_size=size,
                          save_images=True, image_compression="lzf", progress=False))
    pool = H5TileDataset(sorted(tiles.rglob("*.h5")))
    if len(pool) < n_min:
        raise RuntimeError(f"only {len(pool)} tiles of {size} px; need {n_min}")
    with h5py.File(cache, "w") as h:
        out = h.create_dataset("responses", (len(pool), size, size), dtype="uint8", chunks=(1, size, size))
        for i in range(len(pool)):
            hed = rgb_to_hed(to_float(pool[i]["image"][None]))[0, 0]
            out[i] = ((hed > 0.05).to(torch.uint8) * 255).numpy()
    return tiles, cache


def loader_rate(pool, batch_size: int, workers: int, batches: int, pin: bool) -> float:
    """Images/s of the DataLoader alone (what the training loop would wait for)."""
    loader = torch.utils.data.DataLoader(pool, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=pin, persistent_workers=workers > 0, drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up excluded
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            n += len(next(it)["image"])
        except StopIteration:
            break
    return n / max(time.perf_counter() - t0, 1e-9)


def run_one(args: argparse.Namespace) -> dict:
    """One configuration, in this process; prints a JSON row."""
    args.threads, args.channels_last = args.threads[0], args.channels_last[0]
    from rckd.engine import read_metrics
    from rckd.pretrain.cache import CachedResponses
    from rckd.pretrain.distill import RCKDOptions
    from rckd.pretrain.moco import MoCoOptions
    from rckd.pretrain.pools import build_pool
    from rckd.pretrain.run import PretrainConfig, pretrain

    torch.set_num_threads(args.threads)
    tiles, cache = Path(args.tiles), Path(args.cache)
    live = args.method == "rckd_live"  # the teacher labels each batch inside the step
    method = "rckd" if live else args.method
    out = Path(args.work) / (f"run_{args.method}_{args.backbone}_{args.size}_{args.precision}_"
                             f"cl{args.channels_last}_t{args.threads}_{args.steps}")
    device = torch.device(args.device)
    pool = build_pool(str(tiles), args.size, 0.5, 0, memory_limit_mb=0)  # lazy h5 reads, as at scale
    if method == "rckd" and not live:
        pool = CachedResponses(pool, cache)
    data_rate = loader_rate(pool, args.batch_size, args.workers, args.warmup + args.steps,
                            device.type == "cuda")
    cfg = PretrainConfig(out=str(out), device=args.device, method=method, backbone=args.backbone,
                         pool=str(tiles), image_size=args.size,
                         rckd=RCKDOptions(cache=str(cache) if method == "rckd" and not live else None,
                                          tta=1, precompute=False),
                         batch_size=args.batch_size, steps=args.warmup + args.steps, warmup_steps=0,
                         log_every=args.log_every or args.warmup, workers=args.workers, precision=args.precision,
                         channels_last=args.channels_last == "on", compile=args.compile, probe_size=None,
                         resume=False, tensorboard=False, moco=MoCoOptions(queue=4096), pool_memory_mb=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    pretrain(cfg)
    logged = read_metrics(out)
    rows = [r for r in logged if r["step"] > args.warmup]
    measured_steps = sum(1 for _ in rows) and rows[-1]["step"] - args.warmup
    ips = sum(r["perf/images_per_s"] for r in rows) / len(rows)
    data_frac = sum(r["perf/data_fraction"] for r in rows) / len(rows)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 30
        mem = f"{peak:.2f} GiB GPU"
    else:
        mem = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB RSS"
    return {"method": args.method, "backbone": args.backbone, "size": args.size,
            "precision": args.precision, "channels_last": args.channels_last, "threads": args.threads,
            "losses": {r["step"]: r["train/loss"] for r in logged},
            "images_per_s": ips, "data_only_images_per_s": data_rate, "data_wait_fraction": data_frac,
            "peak_memory": mem, "measured_steps": measured_steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", nargs="+", default=["auto"], choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", nargs="+", default=["on"], choices=("on", "off"))
    p.add_argument("--methods", nargs="+", default=["rckd", "barlow", "moco"],
                   help="rckd (cached responses), rckd_live (teacher in the step, one view), barlow, moco")
    p.add_argument("--backbones", nargs="+", default=["resnet18", "csat"])
    p.add_argument("--sizes", nargs="+", type=int, default=[256, 384])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="measured steps")
    p.add_argument("--warmup", type=int, default=2, help="steps excluded from the measurement")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch intra-op threads per process")
    p.add_argument("--log-every", type=int, default=0, help="loss logging interval (0: the warm-up)")
    p.add_argument("--curve", action="store_true",
                   help="also compare the loss curves of the precisions (same seed, data and steps)")
    p.add_argument("--teacher-views", type=int, nargs="*", default=[],
                   help="also measure the default teacher's labelling rate with these TTA views")
    p.add_argument("--pool", default="", help="an existing h5 tile set folder (default: a synthetic slide)")
    p.add_argument("--responses", default="", help="its response cache (with --pool)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--work", default="/tmp/rckd_bench_pretrain")
    p.add_argument("--out", default="", help="write the Markdown table here")
    # internal: one configuration
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--precision", help=argparse.SUPPRESS)
    p.add_argument("--backbone", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--tiles", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    n_min = args.batch_size * (args.warmup + args.steps + 1) * 2
    rows = []
    for size in args.sizes:
        tiles, cache = (Path(args.pool), Path(args.responses)) if args.pool else make_data(work, size, n_min)
        for backbone, method, precision, cl, threads in itertools.product(
                args.backbones, args.methods, args.precisions, args.channels_last, args.threads):
            rows.append(run_subprocess(args, dict(method=method, backbone=backbone, size=size, tiles=tiles,
                                                  cache=cache, precision=precision, channels_last=cl,
                                                  threads=threads)))
    table = render(rows, args)
    if args.teacher_views:
        table += teacher_rates(args, tiles)
    print(table)
    if args.out:
        Path(args.out).write_text(table)


def teacher_rates(args: argparse.Namespace, tiles: Path) -> str:
    """Tiles/s of the default teacher labelling the pool (what the response cache costs)."""
    from rckd.models.teachers import get_teacher
    from rckd.pretrain.pools import build_pool

    torch.set_num_threads(args.threads[0])
    pool = build_pool(str(tiles), args.sizes[-1], 0.5, 0, memory_limit_mb=0)
    images = torch.stack([pool[i]["image"] for i in range(args.batch_size)])
    lines = [f"\n**Teacher labelling** (default teacher, {args.batch_size} tiles of {args.sizes[-1]} px "
             f"at {pool.mpp:g} um/px, fp32, {args.threads[0]} thread(s))\n\n| views | tiles/s | x 1 view |\n"
             "|---:|---:|---:|\n"]
    rates = {}
    for views in args.teacher_views:
        teacher = get_teacher("default", tta=views)
        with torch.no_grad():
            teacher.response(images[:2], pool.mpp)  # warm-up
            t0 = time.perf_counter()
            teacher.response(images, pool.mpp)
        rates[views] = len(images) / (time.perf_counter() - t0)
        lines.append(f"| {views} | {rates[views]:.2f} | {rates[views] / rates[args.teacher_views[0]]:.2f} |\n")
    return "".join(lines)


def run_subprocess(args: argparse.Namespace, one: dict) -> dict:
    """One configuration in a fresh process (its own threads and peak memory); its result row."""
    cmd = [sys.executable, __file__, "--one"]
    for k, v in one.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    for k in ("device", "batch_size", "steps", "warmup", "workers", "work", "log_every"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    cmd += ["--compile"] if args.compile else []
    env = {**os.environ, "OMP_NUM_THREADS": str(one["threads"]), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print(proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{one} failed")
    row = json.loads(line[7:])
    print({k: v for k, v in row.items() if k != "losses"}, file=sys.stderr, flush=True)
    return row

def render(rows: list[dict], args: argparse.Namespace) -> str:
    dev = args.device if args.device == "cpu" else torch.cuda.get_device_name(0)
    head = (f"# Pretraining throughput ({dev})\n\n"
            f"`python benchmarks/pretrain.py {' '.join(sys.argv[1:])}`  \n"
            f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} logical CPUs; {time.strftime('%Y-%m-%d %H:%M')}; load average "
            f"{os.getloadavg()[0]:.1f} at the end\n\n"
            "| method | backbone | input | precision | channels_last | threads | train images/s | "
            "x first row | data only images/s | step waiting on data | peak memory |\n"
            "|---|---|---|---|---|---|---:|---:|---:|---:|---|\n")
    base = rows[0]["images_per_s"] if rows else 1.0
    body = "".join(f"| {r['method']} | {r['backbone']} | {r['size']} | {r['precision']} | "
                   f"{r['channels_last']} | {r['threads']} | {r['images_per_s']:.2f} | "
                   f"{r['images_per_s'] / base:.2f} | {r['data_only_images_per_s']:.1f} | "
                   f"{100 * r['data_wait_fraction']:.1f}% | {r['peak_memory']} |\n" for r in rows)
    return head + body + (curves(rows) if args.curve else "")


def curves(rows: list[dict]) -> str:
    """Loss curves of runs that differ only in precision/layout/threads, side by side."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["backbone"], r["size"]), []).append(r)
    out = []
    for (method, backbone, size), rs in groups.items():
        steps = sorted(set.intersection(*(set(r["losses"]) for r in rs)), key=int)
        names = [f"{r['precision']}, cl {r['channels_last']}, {r['threads']} thr" for r in rs]
        out.append(f"\n**Loss curves, {method} / {backbone} / {size} px** (same seed, data and "
                   f"augmentation; mean loss per logging interval)\n\n| step | {' | '.join(names)} |\n"
                   f"|---:|{'---:|' * len(rs)}\n")
        for step in steps:
            cells = " | ".join(f"{r['losses'][step]:.4f}" for r in rs)
            out.append(f"| {step} | {cells} |\n")
    return "".join(out)

if __name__ == "__main__":
    main()
