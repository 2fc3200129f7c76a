"""``rckd reproduce GRID.yaml``: pretrain, fine-tune and tabulate a grid; resumable.

The grid is backbone x initialisation x dataset x seed. Initialisations: ``random``,
``barlow``, ``moco`` and ``rckd`` (pretrained here by :func:`rckd.pretrain.run.pretrain`) and
``imagenet`` (a local timm-format file per backbone in ``imagenet_weights``; without one those
cells read n/a). Optionally an unlabeled ``pool`` is first tiled from slides/images with
``rckd tile``. Layout of ``<out>``::

    pool/slides.csv, pool/<mpp>mpp_<size>px_<overlap>px/   tiles of the unlabeled pool (+ manifest.json)
    pretrain/<backbone>/<method>[/seed<k>]/                 backbone.safetensors, pretrain.json
    finetune/<backbone>/<init>/<dataset>/seed<k>/           results.json, tb/, config.yaml
    table.md  table.csv  table.png  reproduce.json          the rendered table and run log

A run whose ``results.json`` (or ``backbone.safetensors`` + ``pretrain.json``) exists is skipped,
so an interrupted grid resumes where it stopped. Dataset roots are relative to ``data_root``
(default ``../shared/data``), so the same grid runs against another copy of the data with
``data_root=/path``. The grid YAML holds overrides of :class:`ReproduceConfig`; options typed on
the command line win over it (mappings are merged key by key, so
``pretrain_methods.rckd.teacher=PATH`` changes only that key).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import time
from pathlib import Path

import torch
import yaml

from rckd.config import RunConfig, from_dict, load_config, option, save_config, to_dict
from rckd.io import atomic_write_text, read_json, write_json
from rckd.report import Column, collect, write_report

__all__ = ["ReproduceConfig", "reproduce", "resolve_grid", "PRETRAINED"]

log = logging.getLogger(__name__)

#: config keys that may differ between a finished run and the grid without making it stale
VOLATILE = frozenset({"out", "device", "threads", "workers", "log_every", "tensorboard",
                      "eval_batch_size", "image_every", "ckpt_every", "keep_checkpoints", "resume",
                      "compile", "save_model", "tags", "eval_every", "probe_size", "pool_memory_mb",
                      "cache_images"})

#: initialisations that need a pretraining run (method name in rckd.pretrain.METHODS)
PRETRAINED = ("barlow", "moco", "rckd")
INITS = ("random", "barlow", "moco", "imagenet", "rckd")


@dataclasses.dataclass
class ReproduceConfig(RunConfig):
    """Run a grid of pretraining + fine-tuning experiments and render the RCKD table."""

    grid: list[str] = option(default_factory=list, positional=True, help="grid YAML file")
    out: str = option("runs/reproduce", help="output folder")
    title: str = option("RCKD table", help="table title")
    backbones: list[str] = option(default_factory=lambda: ["resnet18"], help="backbones")
    inits: list[str] = option(default_factory=lambda: list(INITS), help="initialisations")
    seeds: list[int] = option(default_factory=lambda: [0, 1, 2], help="fine-tuning seeds")
    data_root: str = option("../shared/data", help="folder that relative dataset roots live in")
    datasets: dict = option(default_factory=dict, cli=False,
                            help="key -> {dataset, root, options, title, paper, metric, finetune}")
    pool: dict = option(default_factory=dict, cli=False,
                        help="{sources: [{path, mpp} | {dataset, root, split}], tile: {TileConfig overrides}} "
                                 "(empty: none; see rckd.pretrain.sources)")
    pretrain: dict = option(default_factory=dict, cli=False, help="PretrainConfig overrides")
    pretrain_methods: dict = option(default_factory=dict, cli=False,
                                    help="method -> PretrainConfig overrides")
    finetune: dict = option(default_factory=dict, cli=False, help="FinetuneConfig overrides")
    imagenet_weights: dict = option(default_factory=dict, cli=False,
                                    help="backbone -> local timm-format ImageNet weight file")
    pretrain_per_seed: bool = option(False, help="pretrain once per seed (default: once, seed = first)")
    threads: int = option(0, help="torch CPU threads (0: default)")
    report_only: bool = option(False, help="only render the table from existing results")
    keep_going: bool = option(True, help="record a failing run and go on with the grid")
    notes: list[str] = option(default_factory=list, cli=False, help="lines added under the table")


def resolve_grid(cfg: ReproduceConfig) -> ReproduceConfig:
    """The grid file's values, overridden by every option that differs from the default."""
    if not cfg.grid:
        return cfg
    if len(cfg.grid) > 1:
        raise ValueError(f"one grid file expected, got {len(cfg.grid)}: {' '.join(cfg.grid)}")
    merged = load_config(ReproduceConfig, cfg.grid[0])
    defaults = ReproduceConfig()
    changes = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value != getattr(defaults, f.name):
            base = getattr(merged, f.name)
            changes[f.name] = _deep_merge(base, value) if isinstance(value, dict) else value
    return dataclasses.replace(merged, **changes)


def _deep_merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` merged in, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _columns(cfg: ReproduceConfig) -> list[Column]:
    from rckd.data.datasets import dataset_task

    cols = []
    for key, spec in cfg.datasets.items():
        if "dataset" not in spec:
            raise ValueError(f"datasets.{key}: no 'dataset' name")
        cols.append(Column(key, spec.get("title", key), dataset_task(spec["dataset"]),
                           spec.get("metric", ""), spec.get("paper", "")))
    if not cols:
        raise ValueError("the grid has no datasets")
    return cols


def config_changes(saved: dict, current: dict) -> list[str]:
    """Keys (outside :data:`VOLATILE`) in both resolved configs whose values differ.

    A key only one side has (an option added to rckd after the run) does not count.
    """
    keys = (set(saved) & set(current)) - VOLATILE
    return sorted(k for k in keys if saved.get(k) != current.get(k))


def _root(cfg: ReproduceConfig, root: str) -> str:
    if not root:
        return ""
    p = Path(root).expanduser()
    return str(p if p.is_absolute() else Path(cfg.data_root) / p)


# --------------------------------------------------------------------------- stages

def _tile_pool(cfg: ReproduceConfig, out: Path) -> str | None:
    """Tile the unlabeled pool with ``rckd tile``; return the tile-set folder (None: no pool).

    ``pool.sources`` is resolved by :func:`rckd.pretrain.sources.resolve_sources` (slides, images
    and train splits of labelled datasets); ``pool/manifest.json`` records what the pool holds.
    """
    if not cfg.pool:
        return None
    from rckd.data.wsi.pipeline import TileConfig, run_dir_name, run_tiling
    from rckd.pretrain.sources import MANIFEST, pool_manifest, resolve_sources

    sources = resolve_sources(cfg.pool.get("sources", []), cfg.data_root)
    if not sources:
        raise ValueError("pool.sources: no slides or images listed")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "mpp"])
    w.writerows((str(s.path), "" if s.mpp is None else s.mpp) for s in sources)
    atomic_write_text(out / "pool" / "slides.csv", buf.getvalue())
    tile_cfg = from_dict(TileConfig, {**cfg.pool.get("tile", {}), "slides": [str(out / "pool" / "slides.csv")],
                                      "out": str(out / "pool")})
    run_tiling(tile_cfg)
    patches = out / "pool" / run_dir_name(tile_cfg) / "patches"
    manifest = pool_manifest(sources, sorted(patches.glob("*.h5")), to_dict(tile_cfg))
    write_json(patches.parent / MANIFEST, manifest)
    log.info("pool: %d tiles from %d files (%s)", manifest["tiles"], len(sources),
             ", ".join(f"{k}: {v['tiles']}" for k, v in manifest["sources"].items()))
    return str(patches)


def _cache_responses(cfg: ReproduceConfig, pool: str, out: Path) -> str:
    """The RCKD teacher's responses for the whole pool, computed once for every backbone.

    Teacher and test-time views are the rckd pretraining's (``teacher``, ``teacher_tta``); the
    folder is named after both, and a finished cache is reused only if the same teacher made it.
    """
    from rckd.io import safe_name
    from rckd.teacher.predict import PredictConfig, predict_responses

    opts = {**cfg.pretrain, **cfg.pretrain_methods.get("rckd", {})}
    teacher, tta = str(opts.get("teacher", "default")), int(opts.get("teacher_tta", 0))
    folder = out / "pool" / "responses" / f"{safe_name(Path(teacher).stem)}_tta{tta}"
    predict_responses(PredictConfig(inputs=[pool], out=str(folder), teacher=teacher, tta=tta,
                                    device=cfg.device, batch_size=int(opts.get("batch_size", 16))))
    return str(folder)


def _pretrain(cfg: ReproduceConfig, backbone: str, method: str, seed: int, pool: str | None,
              out: Path, cache: str | None = None) -> tuple[Path, str]:
    from rckd.pretrain.run import PretrainConfig, pretrain

    folder = out / "pretrain" / backbone / method / (f"seed{seed}" if cfg.pretrain_per_seed else "")
    weights = folder / "backbone.safetensors"
    overrides = {**cfg.pretrain, **cfg.pretrain_methods.get(method, {}), "method": method,
                 "backbone": backbone, "out": str(folder), "device": cfg.device, "seed": seed}
    if pool:
        overrides["pool"] = pool
    if cache and method == "rckd":
        overrides["teacher_cache"] = cache
    if overrides.get("probe_root"):
        overrides["probe_root"] = _root(cfg, overrides["probe_root"])
    pcfg = from_dict(PretrainConfig, overrides)
    if weights.is_file() and (folder / "pretrain.json").is_file():
        saved = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
        changed = config_changes(saved or {}, to_dict(pcfg))
        if changed:
            raise ValueError(f"{folder}: finished pretraining used another config ({', '.join(changed)} "
                             "differ); use another --out or remove that folder")
        return weights, "skipped"
    log.info("pretraining %s with %s", backbone, method)
    return Path(pretrain(pcfg)), "done"


def _finetune(cfg: ReproduceConfig, backbone: str, init: str, key: str, seed: int,
              weights: str | None, out: Path) -> str:
    from rckd.finetune.run import FinetuneConfig, finetune

    folder = out / "finetune" / backbone / init / key / f"seed{seed}"
    spec = cfg.datasets[key]
    overrides = {**cfg.finetune, **spec.get("finetune", {}), "dataset": spec["dataset"],
                 "root": _root(cfg, spec.get("root", "")), "dataset_options": spec.get("options", {}),
                 "backbone": backbone, "out": str(folder), "device": cfg.device, "seed": seed,
                 "threads": cfg.threads,
                 "tags": {"backbone": backbone, "init": init, "dataset": key, "seed": seed}}
    if init == "imagenet":
        overrides.update(init="imagenet", imagenet_weights=weights)
    else:
        overrides["init"] = weights or "random"
    fcfg = from_dict(FinetuneConfig, overrides)
    done = folder / "results.json"
    if done.is_file():
        try:
            saved = read_json(done)
            changed = config_changes(saved.get("config", {}), to_dict(fcfg))
            if "metrics" in saved and not changed:
                return "skipped"
            log.warning("%s: made with another config (%s differ); redoing the run", done, ", ".join(changed))
        except ValueError:
            log.warning("%s: unreadable, redoing the run", done)
    finetune(fcfg)
    return "done"


def _imagenet_file(cfg: ReproduceConfig, backbone: str) -> str | None:
    path = cfg.imagenet_weights.get(backbone)
    return path if path and Path(path).exists() else None


# --------------------------------------------------------------------------- driver

def reproduce(cfg: ReproduceConfig) -> int:
    """Run (or resume) the grid, render ``table.md/.csv/.png`` under ``out``; 0 if all runs finished."""
    cfg = resolve_grid(cfg)
    unknown = sorted(set(cfg.inits) - set(INITS))
    if unknown:
        raise ValueError(f"unknown init(s) {', '.join(unknown)} (known: {', '.join(INITS)})")
    columns = _columns(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    log_rows: list[dict] = []
    notes = list(cfg.notes)
    if not cfg.report_only:
        _run_grid(cfg, columns, out, log_rows, notes)
    wall = time.perf_counter() - t0
    files = (out / "finetune").rglob("results.json") if (out / "finetune").exists() else []
    rows = [r for r in collect(files) if r["backbone"] in cfg.backbones and r["init"] in cfg.inits
            and r["seed"] in cfg.seeds and r["dataset"] in cfg.datasets]
    notes.append(f"pretraining: {'once per seed' if cfg.pretrain_per_seed else 'once per backbone and method (seed ' + str(cfg.seeds[0]) + '); seeds vary fine-tuning'}")
    notes.append(f"grid wall time this invocation: {wall / 60:.1f} min ({sum(r['status'] == 'done' for r in log_rows)} runs done, "
                 f"{sum(r['status'] == 'skipped' for r in log_rows)} skipped, "
                 f"{sum(r['status'] == 'failed' for r in log_rows)} failed)")
    report = write_report(rows, columns, cfg.backbones, cfg.inits, out, cfg.title, notes)
    write_json(out / "reproduce.json", {"wall_s": wall, "runs": log_rows, "config": to_dict(cfg)})
    print(report["markdown"])
    return 1 if any(r["status"] == "failed" for r in log_rows) else 0


def _record(log_rows: list, stage: str, name: str, fn) -> object:
    t = time.perf_counter()
    try:
        result = fn()
        status = "done"
        if isinstance(result, tuple):
            result, status = result
        elif result in ("done", "skipped"):
            status = result
    except Exception as exc:  # noqa: BLE001 - recorded; re-raised below unless keep_going
        log.error("%s %s failed: %s", stage, name, exc)
        log_rows.append({"stage": stage, "run": name, "status": "failed", "error": str(exc),
                         "seconds": time.perf_counter() - t})
        raise
    log_rows.append({"stage": stage, "run": name, "status": status, "seconds": time.perf_counter() - t})
    return result


def _run_grid(cfg: ReproduceConfig, columns, out: Path, log_rows: list, notes: list) -> None:
    def guarded(stage, name, fn):
        try:
            return _record(log_rows, stage, name, fn)
        except Exception:
            if not cfg.keep_going:
                raise
            return None

    pool = guarded("pool", "tiles", lambda: _tile_pool(cfg, out)) if cfg.pool else None
    if cfg.pool and pool is None:
        notes.append("the unlabeled pool could not be tiled: pretrained inits were not run")
    cache = None
    if pool and "rckd" in cfg.inits and cfg.pool.get("cache_responses", True):
        cache = guarded("pool", "teacher responses", lambda: _cache_responses(cfg, pool, out))
    for backbone in cfg.backbones:
        for init in cfg.inits:
            if init == "imagenet" and _imagenet_file(cfg, backbone) is None:
                notes.append(f"supervised ImageNet / {backbone}: no local weight file "
                             f"(imagenet_weights.{backbone}=PATH), cells n/a")
                continue
            for seed in cfg.seeds:
                weights: str | None = None
                if init in PRETRAINED:
                    if cfg.pool and pool is None:
                        continue
                    p_seed = seed if cfg.pretrain_per_seed else cfg.seeds[0]
                    path = guarded("pretrain", f"{backbone}/{init}/seed{p_seed}",
                                   lambda: _pretrain(cfg, backbone, init, p_seed, pool, out, cache))
                    if path is None:
                        continue
                    weights = str(path)
                elif init == "imagenet":
                    weights = _imagenet_file(cfg, backbone)
                for col in columns:
                    guarded("finetune", f"{backbone}/{init}/{col.key}/seed{seed}",
                            lambda: _finetune(cfg, backbone, init, col.key, seed, weights, out))
