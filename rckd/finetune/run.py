"""``rckd finetune``: fine-tune a backbone on a downstream dataset and write ``results.json``.

Modes: ``full`` (default: every weight trained), ``linear`` (frozen backbone, linear head) and
``knn`` (no training: cosine k-nearest-neighbour vote on pooled embeddings, DINO style).
Classification datasets get GAP + FC; segmentation datasets the dense decoder on the backbone.
Training runs in the engine's one loop (:func:`rckd.engine.fit`); the input size rule is in
:mod:`rckd.finetune.views`. The model is the final-step one (no early stopping on ``val``); val
and test metrics are both reported. Output folder::

    <out>/results.json   config, git hash, seed, split sizes, metrics (val, test), timings
    <out>/config.yaml    resolved config
    <out>/tb/            TensorBoard events (engine);  <out>/metrics.jsonl  training scalars
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import subprocess
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import rckd
from rckd.config import option, save_config, to_dict
from rckd.data.datasets import DATASETS, check_dataset_options, dataset_task, get_dataset
from rckd.engine import TrainConfig, fit
from rckd.finetune.tasks import (ClassificationTask, SegmentationTask, embed, predict_classification,
                                 predict_segmentation)
from rckd.finetune.views import EvalView, TrainView
from rckd.io import write_json
from rckd.metrics.classification import classification_metrics
from rckd.metrics.segmentation import SegmentationMeter
from rckd.models.backbones import create_backbone
from rckd.runtime import resolve_device, seed_everything

__all__ = ["FinetuneConfig", "finetune", "git_hash", "knn_predict"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FinetuneConfig(TrainConfig):
    """Fine-tune a backbone on a classification or segmentation dataset; writes results.json."""

    DEFAULTS = {"steps": 500, "batch_size": 32, "lr": 3e-4, "workers": 0, "log_every": 25}

    dataset: str = option("synthetic", choices=tuple(DATASETS), help="registered dataset name")
    root: str | None = option(None, help="dataset root folder (none for the synthetic datasets)")
    dataset_options: dict = option(default_factory=dict, cli=False,
                                   help="keyword arguments of the dataset (YAML / key=value)")
    backbone: str = option("resnet18", help="backbone name (timm registry)")
    init: str = option("random", help="'random', 'imagenet' (see imagenet_weights) or a backbone "
                                      "checkpoint path")
    imagenet_weights: str | None = option(None, help="local timm-format ImageNet weight file for init=imagenet")
    mode: str = option("full", help="full fine-tune, linear probe or kNN",
                       choices=("full", "linear", "knn"))
    image_size: int = option(224, ge=1, help="network input side (multiple of the backbone's stride)")
    input_mpp: float | None = option(None, gt=0, help="resample images to this um/px first (none: native scale)")
    large_images: str = option("tile", help="'tile' (crops / tiled evaluation) or 'resize'",
                               choices=("tile", "resize"))
    epochs: float | None = option(None, gt=0, help="train this many epochs instead of 'steps' "
                                                   "(steps = ceil(epochs x train size / batch size))")
    drop_rate: float = option(0.0, ge=0, lt=1, help="dropout before the classification head")
    linear_norm: bool = option(True, help="mode=linear: BatchNorm without affine before the head (MAE)")
    decoder_width: int = option(64, ge=1, help="dense decoder width (segmentation)")
    augment: bool = option(True, help="random flips and 90-degree rotations on the device")
    cache_images: bool = option(True, help="keep decoded, resampled training images in memory "
                                           "(off for datasets larger than RAM)")
    knn_k: int = option(20, ge=1, help="neighbours for mode=knn")
    knn_temperature: float = option(0.07, gt=0, help="softmax temperature of the kNN vote")
    eval_splits: list[str] = option(default_factory=lambda: ["val", "test"], choices=("val", "test"),
                                    help="splits evaluated after training (val is reported, not used)")
    eval_batch_size: int = option(64, ge=1, help="tiles per forward pass in evaluation")
    save_model: bool = option(False, help="keep the engine's checkpoint of the fine-tuned model")
    tags: dict = option(default_factory=dict, cli=False,
                        help="copied into results.json as 'grid' (set by rckd reproduce)")
    threads: int | None = option(None, ge=1, help="torch CPU threads (none: torch's default; 1 is "
                                                  "fastest on busy machines)")

    def validate(self) -> None:
        check_dataset_options(self.dataset, self.dataset_options)
        if self.init == "imagenet" and not self.imagenet_weights:
            raise ValueError("imagenet_weights: init=imagenet needs a local timm-format weight file "
                             "(nothing is downloaded)")
        if self.mode == "knn" and dataset_task(self.dataset) != "classification":
            raise ValueError(f"mode=knn needs a classification dataset; {self.dataset!r} is "
                             f"{dataset_task(self.dataset)}")


def git_hash() -> str:
    """The commit of the rckd checkout (``unknown`` outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(rckd.__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _weights(cfg: FinetuneConfig) -> str | None:
    if cfg.init == "random":
        return None
    path = cfg.imagenet_weights if cfg.init == "imagenet" else cfg.init  # set: see validate()
    p = Path(path)
    if not p.exists() and not Path(f"{p}.safetensors").exists():
        raise FileNotFoundError(f"{path}: initial weights not found")
    return str(p if p.exists() else f"{p}.safetensors")


def _splits(cfg: FinetuneConfig) -> dict:
    opts = dict(cfg.dataset_options)
    return {s: get_dataset(cfg.dataset, cfg.root, s, **opts) for s in ("train", "val", "test")}


def _scale(cfg: FinetuneConfig, dataset) -> float:
    mpp = float(getattr(dataset, "mpp", float("nan")))
    return mpp / cfg.input_mpp if cfg.input_mpp and math.isfinite(mpp) else 1.0


def _loader(view, cfg: FinetuneConfig) -> DataLoader:
    return DataLoader(view, batch_size=max(1, cfg.eval_batch_size // 4), shuffle=False,
                      num_workers=cfg.workers, collate_fn=list)


def evaluate(task, dataset, cfg: FinetuneConfig, device: torch.device) -> dict:
    """Metrics of ``task`` on ``dataset`` (tiled or resized by the size rule)."""
    task.eval()
    view = EvalView(dataset, cfg.image_size, _scale(cfg, dataset), cfg.large_images)
    if isinstance(task, SegmentationTask):
        meter = SegmentationMeter(len(dataset.classes))
        for batch in _loader(view, cfg):
            for s in batch:
                pred = predict_segmentation(task, s["image"], cfg.image_size, tuple(s["mask"].shape),
                                            device, cfg.eval_batch_size)
                meter.update(pred, s["mask"])
        return meter.compute()
    y_true, y_pred = [], []
    for batch in _loader(view, cfg):
        probs = predict_classification(task, [s["image"] for s in batch], cfg.image_size, device,
                                       cfg.eval_batch_size)
        y_pred += probs.argmax(1).tolist()
        y_true += [s["label"] for s in batch]
    return classification_metrics(y_true, y_pred, len(dataset.classes))


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, feats: torch.Tensor,
                num_classes: int, k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Weighted cosine kNN vote (DINO): predicted labels of ``feats``."""
    a = torch.nn.functional.normalize(train_feats.float(), dim=1)
    b = torch.nn.functional.normalize(feats.float(), dim=1)
    sim = b @ a.T
    k = min(k, len(a))
    top, idx = sim.topk(k, dim=1)
    weights = (top / temperature).exp()
    votes = torch.zeros(len(b), num_classes)
    votes.scatter_add_(1, train_labels[idx], weights)
    return votes.argmax(1)


def _features(backbone, dataset, cfg: FinetuneConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    view = EvalView(dataset, cfg.image_size, _scale(cfg, dataset), cfg.large_images)
    feats, labels = [], []
    for batch in _loader(view, cfg):
        feats.append(embed(backbone, [s["image"] for s in batch], cfg.image_size, device, cfg.eval_batch_size))
        labels += [s["label"] for s in batch]
    return torch.cat(feats), torch.tensor(labels)


def _run_knn(cfg: FinetuneConfig, backbone, splits: dict, device) -> dict:
    backbone.to(device).eval()
    train_f, train_y = _features(backbone, splits["train"], cfg, device)
    n = len(splits["train"].classes)
    metrics = {}
    for part in cfg.eval_splits:
        f, y = _features(backbone, splits[part], cfg, device)
        pred = knn_predict(train_f, train_y, f, n, cfg.knn_k, cfg.knn_temperature)
        metrics[part] = classification_metrics(y.tolist(), pred.tolist(), n)
    return metrics


def finetune(cfg: FinetuneConfig) -> dict:
    """Fine-tune (or kNN-evaluate) ``cfg.backbone`` from ``cfg.init``; return and write the results."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    task_kind = dataset_task(cfg.dataset)
    splits = _splits(cfg)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    backbone = create_backbone(cfg.backbone, weights=_weights(cfg))
    if cfg.image_size % backbone.input_divisor:
        raise ValueError(f"image_size {cfg.image_size} is not a multiple of {backbone.input_divisor} "
                         f"({cfg.backbone}'s coarsest stride)")
    n_classes = len(splits["train"].classes)
    timings: dict[str, float] = {}
    if cfg.mode == "knn":
        t1 = time.perf_counter()
        metrics = _run_knn(cfg, backbone, splits, device)
        timings["eval_s"] = time.perf_counter() - t1
        steps = 0
    else:
        if task_kind == "segmentation":
            task = SegmentationTask(backbone, n_classes, cfg.decoder_width, cfg.augment)
        else:
            task = ClassificationTask(backbone, n_classes, linear=cfg.mode == "linear",
                                      drop_rate=cfg.drop_rate, augment=cfg.augment,
                                      linear_norm=cfg.linear_norm)
        steps = cfg.steps
        if cfg.epochs:
            steps = max(1, math.ceil(cfg.epochs * len(splits["train"]) / cfg.batch_size))
        train_cfg = dataclasses.replace(cfg, steps=steps)
        view = TrainView(splits["train"], cfg.image_size, _scale(cfg, splits["train"]), cfg.large_images,
                         cache=cfg.cache_images)
        result = fit(task, view, train_cfg, config=to_dict(train_cfg),
                     meta={"arch": cfg.backbone, "init": cfg.init, "dataset": cfg.dataset})
        timings.update(train_s=result.seconds, images_per_s=result.images_per_s)
        t1 = time.perf_counter()
        metrics = {part: evaluate(task, splits[part], cfg, device) for part in cfg.eval_splits}
        timings["eval_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    results = {"config": to_dict(cfg), "git": git_hash(), "rckd_version": rckd.__version__,
               "seed": cfg.seed, "task": task_kind, "classes": list(splits["train"].classes),
               "split_sizes": {k: len(v) for k, v in splits.items()}, "steps": steps,
               "metrics": metrics, "timings": timings}
    if cfg.tags:
        results["grid"] = dict(cfg.tags)
    save_config(cfg, out / "config.yaml")
    write_json(out / "results.json", results)
    if cfg.mode != "knn" and not cfg.save_model:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    _log_summary(cfg, results)
    return results


def _log_summary(cfg: FinetuneConfig, results: dict) -> None:
    part = "test" if "test" in results["metrics"] else next(iter(results["metrics"]), None)
    key = "miou" if results["task"] == "segmentation" else "accuracy"
    value = results["metrics"][part][key] if part else float("nan")
    log.info("%s %s init=%s mode=%s seed=%d: %s %s %.4f (%.0f s)", cfg.dataset, cfg.backbone,
             cfg.tags.get("init", Path(cfg.init).name), cfg.mode, cfg.seed, part, key, value, results["timings"]["total_s"])


