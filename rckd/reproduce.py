"""``rckd reproduce GRID.yaml``: pretrain, fine-tune and tabulate a grid; resumable.

The grid (:class:`~rckd.grid.ReproduceConfig`) is backbone x initialisation x dataset x seed.
Initialisations: ``random``, ``barlow``, ``moco`` and ``rckd`` (pretrained here by
:func:`rckd.pretrain.run.pretrain`) and ``imagenet`` (a local timm-format file per backbone in
``imagenet_weights``; without one those cells read n/a). Optionally an unlabeled ``pool`` is first
tiled with ``rckd tile`` from slides, images and train splits of labelled datasets
(:mod:`rckd.pretrain.sources`), and labelled once by the RCKD teacher. Layout of ``<out>``::

    pool/slides.csv, pool/<mpp>mpp_<size>px_<overlap>px/   tiles of the unlabeled pool (+ manifest.json)
    pool/responses/<teacher>_tta<k>/                        the RCKD teacher's responses, once per grid
    pretrain/<backbone>/<method>[/seed<k>]/                 backbone.safetensors, pretrain.json
    finetune/<backbone>/<init>/<dataset>/seed<k>/           results.json, tb/, config.yaml
    table.md  table.csv  table.png  reproduce.json          the rendered table and run log

Before anything runs, every run's config is built and checked (:func:`~rckd.grid.plan_grid`): a bad
grid fails in seconds and runs nothing. A run whose ``results.json`` (or ``backbone.safetensors`` +
``pretrain.json``) exists is skipped, so an interrupted grid resumes where it stopped. Dataset
roots are relative to ``data_root`` (``$RCKD_DATA``, else ``../shared/data`` beside the checkout).
On the command line the grid file is the first layer of the config: every option typed after it
wins (mappings merge key by key, so ``pretrain.rckd.teacher=PATH`` changes that key only).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import time
from pathlib import Path

import yaml

from rckd.config import equivalent, save_config, to_dict, update
from rckd.grid import (INITS, PRETRAINED, DatasetEntry, FinetuneRun, GridPlan, PretrainRun, ReproduceConfig,
                       dataset_root, plan_grid)
from rckd.io import atomic_write_text, read_json, write_json
from rckd.report import collect, write_report

__all__ = ["ReproduceConfig", "DatasetEntry", "reproduce", "config_changes", "PRETRAINED", "INITS"]

log = logging.getLogger(__name__)

#: config keys that may differ between a finished run and the grid without making it stale
VOLATILE = frozenset({"out", "device", "threads", "workers", "log_every", "tensorboard",
                      "eval_batch_size", "image_every", "ckpt_every", "keep_checkpoints", "resume",
                      "compile", "save_model", "tags", "eval_every", "probe_size", "pool_memory_mb",
                      "cache_images"})


def config_changes(saved: dict, current: dict) -> list[str]:
    """Keys (outside :data:`VOLATILE`) in both resolved configs whose values differ.

    A key only one side has (an option added to rckd after the run) does not count, nor does a
    value saved in an older spelling (:func:`rckd.config.equivalent`).
    """
    keys = (set(saved) & set(current)) - VOLATILE
    return sorted(k for k in keys if not equivalent(saved.get(k), current.get(k)))


# --------------------------------------------------------------------------- stages

def _tile_pool(cfg: ReproduceConfig, plan: GridPlan) -> str:
    """Tile the unlabeled pool with ``rckd tile``; return the tile-set folder.

    ``pool.sources`` is resolved by :func:`rckd.pretrain.sources.resolve_sources` (slides, images
    and train splits of labelled datasets); ``manifest.json`` records what the pool holds.
    """
    from rckd.data.wsi.pipeline import run_dir_name, run_tiling
    from rckd.pretrain.sources import MANIFEST, pool_manifest, resolve_sources

    sources = resolve_sources([e.as_source() for e in cfg.pool.sources], cfg.data_root)
    if not sources:
        raise ValueError("pool.sources: no slides or images listed")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "mpp"])
    w.writerows((str(s.path), "" if s.mpp is None else s.mpp) for s in sources)
    atomic_write_text(plan.tile.slides[0], buf.getvalue())
    run_tiling(plan.tile)
    patches = Path(plan.tile.out) / run_dir_name(plan.tile) / "patches"
    manifest = pool_manifest(sources, sorted(patches.glob("*.h5")), to_dict(plan.tile))
    write_json(patches.parent / MANIFEST, manifest)
    log.info("pool: %d tiles from %d files (%s)", manifest["tiles"], len(sources),
             ", ".join(f"{k}: {v['tiles']}" for k, v in manifest["sources"].items()))
    return str(patches)


def _cache_responses(plan: GridPlan) -> str:
    """The RCKD teacher's responses for the whole pool (``rckd teacher predict``), once per grid."""
    from rckd.teacher.predict import predict_responses

    predict_responses(plan.responses)
    return plan.responses.out


def _pretrain(run: PretrainRun, cached: bool = True) -> tuple[Path, str]:
    """Pretrain (or confirm finished) one run; without the grid's response cache (its stage
    failed), RCKD runs its teacher on the fly."""
    from rckd.pretrain.run import pretrain

    if run.method == "rckd" and run.config.rckd.cache and not cached:
        run = dataclasses.replace(run, config=update(run.config, {"rckd": {"cache": None}}))
    folder = Path(run.config.out)
    weights = folder / "backbone.safetensors"
    if weights.is_file() and (folder / "pretrain.json").is_file():
        saved = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
        changed = config_changes(saved or {}, to_dict(run.config))
        if changed:
            raise ValueError(f"{folder}: finished pretraining used another config ({', '.join(changed)} "
                             "differ); use another --out or remove that folder")
        return weights, "skipped"
    log.info("pretraining %s with %s", run.backbone, run.method)
    return Path(pretrain(run.config)), "done"


def _finetune(run: FinetuneRun) -> str:
    from rckd.finetune.run import finetune

    done = Path(run.config.out) / "results.json"
    if done.is_file():
        try:
            saved = read_json(done)
            changed = config_changes(saved.get("config", {}), to_dict(run.config))
            if "metrics" in saved and not changed:
                return "skipped"
            log.warning("%s: made with another config (%s differ); redoing the run", done, ", ".join(changed))
        except ValueError:
            log.warning("%s: unreadable, redoing the run", done)
    finetune(run.config)
    return "done"


# --------------------------------------------------------------------------- driver

def reproduce(cfg: ReproduceConfig) -> int:
    """Run (or resume) the grid, render ``table.md/.csv/.png`` under ``out``; 0 if all runs finished.

    The whole grid is checked first (:func:`~rckd.grid.plan_grid`); a ``ConfigError`` there means
    nothing ran.
    """
    plan = plan_grid(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    log_rows: list[dict] = []
    notes = list(cfg.notes) + plan.notes
    if not cfg.report_only:
        _run_grid(cfg, plan, log_rows, notes)
    wall = time.perf_counter() - t0
    files = (out / "finetune").rglob("results.json") if (out / "finetune").exists() else []
    rows = [r for r in collect(files) if r["backbone"] in cfg.backbones and r["init"] in cfg.inits
            and r["seed"] in cfg.seeds and r["dataset"] in cfg.datasets]
    notes.append(f"pretraining: {'once per seed' if cfg.pretrain_per_seed else 'once per backbone and method (seed ' + str(cfg.seeds[0]) + '); seeds vary fine-tuning'}")
    notes.append(f"grid wall time this invocation: {wall / 60:.1f} min ({sum(r['status'] == 'done' for r in log_rows)} runs done, "
                 f"{sum(r['status'] == 'skipped' for r in log_rows)} skipped, "
                 f"{sum(r['status'] == 'failed' for r in log_rows)} failed)")
    write_report(rows, plan.columns, cfg.backbones, cfg.inits, out, cfg.title, notes)
    write_json(out / "reproduce.json", {"wall_s": wall, "runs": log_rows, "config": to_dict(cfg)})
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


def _run_grid(cfg: ReproduceConfig, plan: GridPlan, log_rows: list, notes: list) -> None:
    def guarded(stage, name, fn):
        try:
            return _record(log_rows, stage, name, fn)
        except Exception:
            if not cfg.keep_going:
                raise
            return None

    pool_ok = plan.tile is None or guarded("pool", "tiles", lambda: _tile_pool(cfg, plan)) is not None
    if not pool_ok:
        notes.append("the unlabeled pool could not be tiled: pretrained inits were not run")
    cached = (pool_ok and plan.responses is not None
              and guarded("pool", "teacher responses", lambda: _cache_responses(plan)) is not None)
    pretrained: dict[str, Path | None] = {}
    for run in plan.finetune:
        if run.pretrain is not None:
            if not pool_ok:
                continue
            if run.pretrain.name not in pretrained:
                pretrained[run.pretrain.name] = guarded("pretrain", run.pretrain.name,
                                                        lambda: _pretrain(run.pretrain, cached))
            if pretrained[run.pretrain.name] is None:
                continue
        guarded("finetune", run.name, lambda: _finetune(run))
