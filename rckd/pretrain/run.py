"""``rckd pretrain``: build pool, task and probes from a config, train on the engine, export.

The output folder holds ``config.yaml`` (resolved), ``checkpoints/`` (resumable training
state), ``tb/`` + ``metrics.jsonl`` (logs), ``backbone.safetensors`` + ``backbone.json`` (the
student backbone alone, in timm's key layout) and ``pretrain.json`` (summary). Launch with
``torchrun --nproc_per_node N -m rckd.cli pretrain ...`` for DDP; ``batch_size`` is per process.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rckd.config import option, save_config, section, to_dict
from rckd.data.datasets import DATASETS, dataset_task
from rckd.engine import TrainConfig, fit
from rckd.engine.distributed import cleanup, init_distributed
from rckd.io import read_json, write_json
from rckd.pretrain import METHODS
from rckd.pretrain.barlow import BarlowOptions
from rckd.pretrain.distill import RCKDOptions
from rckd.pretrain.imagenet import ImageNetOptions
from rckd.pretrain.moco import MoCoOptions
from rckd.pretrain.pools import MemoryDataset
from rckd.runtime import seed_everything

__all__ = ["PretrainConfig", "pretrain", "build_task"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PretrainConfig(TrainConfig):
    """Pretrain a student backbone: rckd (distil a nuclei teacher), barlow, moco or imagenet init."""

    DEFAULTS = {"out": "runs/pretrain", "steps": 1000, "batch_size": 32, "warmup_steps": 20,
                "eval_every": 250}

    method: str = option("rckd", help="pretraining method", choices=tuple(METHODS))
    backbone: str = option("resnet18", help="student backbone (resnet18, csat or a timm name)")
    pool: str = option("synthetic", help="unlabeled pool: 'synthetic', an h5 tile set (file or "
                                         "folder) or an image folder")
    pool_size: int = option(1024, ge=1, help="tiles in the synthetic pool")
    pool_memory_mb: int = option(1024, ge=0, help="pools up to this size are held in memory (0: always "
                                                  "read lazily by the DataLoader workers)")
    slide_root: str | None = option(None, help="slides of an h5 tile set saved without pixels")
    image_size: int = option(384, ge=32, help="student input side in pixels, a multiple of 32 (assumed 384)")
    mpp: float = option(0.5, gt=0, help="microns/pixel of synthetic tiles and image folders")
    augment: bool = option(True, help="augment on the device (geometry, HED stain, colour)")
    probe_size: int | None = option(128, ge=2, help="labelled synthetic tiles for kNN/linear probes "
                                                    "(half train, half test; none: off); run every eval_every steps")
    probe_dataset: str | None = option(None, choices=tuple(DATASETS),
                                       help="probe on this registered classification dataset instead "
                                            "(train split fits, val scores; test never read)")
    probe_root: str | None = option(None, help="root folder of probe_dataset")
    probe_crop: int = option(256, ge=1, help="probe_dataset images: centre crop side at the pool's mpp")
    # each method's own options, one section per entry of METHODS (see rckd.pretrain)
    rckd: RCKDOptions = section(RCKDOptions)
    barlow: BarlowOptions = section(BarlowOptions)
    moco: MoCoOptions = section(MoCoOptions)
    imagenet: ImageNetOptions = section(ImageNetOptions)

    def validate(self) -> None:
        if self.image_size % 32:
            raise ValueError(f"image_size: must be a multiple of 32, got {self.image_size}")
        if self.method == "imagenet" and not self.imagenet.weights:
            raise ValueError("imagenet.weights: method=imagenet needs a local timm-format weight file "
                             "(nothing is downloaded)")
        if self.probe_dataset and dataset_task(self.probe_dataset) != "classification":
            raise ValueError(f"probe_dataset: {self.probe_dataset!r} is not a classification dataset")


def build_task(cfg: PretrainConfig, mpp: float):
    """The method's :class:`rckd.engine.Task` with a fresh backbone."""
    from rckd.models.backbones import create_backbone

    task = METHODS[cfg.method]
    if task is None:
        raise ValueError(f"method {cfg.method!r} trains nothing")
    return task.build(create_backbone(cfg.backbone), cfg, mpp)


def _probe(cfg: PretrainConfig, mpp: float):
    if not cfg.eval_every or not (cfg.probe_size or cfg.probe_dataset):
        return None
    from rckd.data.synthetic import SyntheticDataset
    from rckd.pretrain.probes import HealthProbe, dataset_probe

    if cfg.probe_dataset:
        return dataset_probe(cfg.probe_dataset, cfg.probe_root, mpp, cfg.probe_crop, cfg.batch_size)

    return HealthProbe(SyntheticDataset(cfg.probe_size, seed=cfg.seed + 7919, size=cfg.image_size,
                                        mpp=cfg.mpp, task="classification"), batch_size=cfg.batch_size)


def _pool(cfg: PretrainConfig):
    from rckd.pretrain.pools import build_pool

    pool = build_pool(cfg.pool, cfg.image_size, cfg.mpp, cfg.pool_size, seed=cfg.seed,
                      slide_root=cfg.slide_root, memory_limit_mb=cfg.pool_memory_mb,
                      workers=cfg.workers)
    if cfg.method == "rckd" and cfg.rckd.cache:
        from rckd.pretrain.cache import CachedResponses

        pool = CachedResponses(pool, cfg.rckd.cache)
    return pool


def pool_record(cfg: PretrainConfig, pool) -> dict:
    """What this run was pretrained on: the pool's spec, size, mpp, tile size and, for a pool
    tiled by ``rckd reproduce``, its manifest (sources, files and tiles per source)."""
    from rckd.pretrain.sources import MANIFEST

    record = {"pool": cfg.pool, "tiles": len(pool), "mpp": float(pool.mpp), "image_size": cfg.image_size}
    path = Path(cfg.pool)
    for folder in ([path.parent, path.parent.parent] if path.suffix == ".h5" else [path, path.parent]):
        if (folder / MANIFEST).is_file():
            record["manifest"] = read_json(folder / MANIFEST)
            break
    if getattr(pool, "teacher", None):
        record["responses"] = pool.teacher  # which teacher made the cached responses
    return record


@torch.no_grad()
def precompute_targets(teacher, images: torch.Tensor, mpp: float, device: torch.device,
                       batch_size: int = 32) -> torch.Tensor:
    """Teacher responses of uint8 tiles (N, 3, H, W) as uint8 (N, H, W) (probability x 255)."""
    teacher = teacher.to(device).eval()
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="teacher responses", unit="batch",
                  disable=None, mininterval=2.0):
        r = teacher.response(images[i:i + batch_size].to(device), mpp)[:, 0].float()
        out.append(r.mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu())
    return torch.cat(out)


def _teacher_record(cfg: PretrainConfig, pool) -> dict | str | None:
    if cfg.method != "rckd":
        return None
    return getattr(pool, "teacher", None) or cfg.rckd.teacher


def pretrain(cfg: PretrainConfig) -> Path:
    """Run ``cfg.method`` and return the path of the exported ``backbone.safetensors``."""
    out = Path(cfg.out)
    info = init_distributed(cfg.device)
    meta = {"method": cfg.method, "backbone": cfg.backbone, "input_size": cfg.image_size}
    try:
        if cfg.method == "imagenet":
            from rckd.pretrain.imagenet import imagenet_init

            path = out / "backbone.safetensors"
            if info.is_main:
                save_config(cfg, out / "config.yaml")
                path = imagenet_init(cfg.backbone, cfg.imagenet.weights, out,
                                     {**meta, "mpp": cfg.mpp, "config": to_dict(cfg)})
            return path
        seed_everything(cfg.seed)
        if info.is_main:  # the folder and config first: pool preparation can take minutes
            save_config(cfg, out / "config.yaml")
        log.info("%s/%s: preparing the pool %s", cfg.method, cfg.backbone, cfg.pool)
        pool = _pool(cfg)
        log.info("pool: %d tiles at %.3g um/px", len(pool), float(pool.mpp))
        mpp = float(pool.mpp)
        task = build_task(cfg, mpp)
        seen = cfg.steps * cfg.batch_size * cfg.accum_steps * info.world_size
        if cfg.method == "rckd" and cfg.rckd.precompute and isinstance(pool, MemoryDataset) \
                and "target" not in pool.data and seen >= len(pool):  # cheaper only from one epoch on
            pool.data["target"] = precompute_targets(task.teacher, pool.data["image"], mpp,
                                                     info.device, cfg.batch_size)
        if info.is_main:
            write_json(out / "pool.json", pool_record(cfg, pool))
        result = fit(task, pool, cfg, meta={**meta, "arch": cfg.backbone, "mpp": mpp},
                     evaluate=_probe(cfg, mpp))
        path = out / "backbone.safetensors"
        if info.is_main:
            path = task.export(out / "backbone", {**meta, "mpp": mpp, "step": result.step,
                                                  "teacher": _teacher_record(cfg, pool),
                                                  "config": to_dict(cfg)})
            last = result.history[-1] if result.history else {}
            write_json(out / "pretrain.json", {
                "method": cfg.method, "backbone": cfg.backbone, "steps": result.step,
                "seconds": round(result.seconds, 2), "images_per_s": round(result.images_per_s, 2),
                "world_size": info.world_size, "device": str(info.device), "final": last,
                "backbone_weights": str(path)})
            log.info("%s pretraining done: %s (%.1f images/s)", cfg.method, path, result.images_per_s)
        return path
    finally:
        cleanup()
