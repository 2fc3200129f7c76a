"""``rckd teacher train``: fit the U-Net nuclei teacher on MoNuSeg (or the synthetic world).

Training runs on the library's engine (:func:`rckd.engine.fit`): :class:`TeacherTask` wraps the
:class:`~rckd.models.teachers.unet.UNetTeacher` and its loss (BCE + soft Dice on the nuclei
channel plus BCE + soft Dice on the boundary channel); :class:`~rckd.teacher.sampling.
TeacherCrops` serves random crops at the teacher's mpp. The engine gives AdamW with a linear
warm-up and cosine decay, autocast on GPUs, DDP under ``torchrun``, TensorBoard scalars and image
panels in ``<out>/tb``, checkpoints in ``<out>/checkpoints`` and exact resumption (rerun the same
command). ``--init`` starts from another teacher checkpoint's weights (fine-tuning, e.g. at another
mpp). The finished teacher is ``<out>/teacher.safetensors`` (fp16 when ``--fp16``), loadable by
``get_teacher(path)``, with watershed thresholds tuned on a few training images.

``data`` is a MoNuSeg-layout root (``holdout`` images are left out) or ``"synthetic"``, which trains
a small teacher on the synthetic world's exact nuclei masks in about a minute on a CPU.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rckd.config import option, save_config, to_dict
from rckd.engine import FitResult, Task, TrainConfig, fit, init_distributed
from rckd.engine.distributed import cleanup
from rckd.io import write_json
from rckd.models.teachers.unet import UNetTeacher
from rckd.paths import data_root
from rckd.runtime import seed_everything
from rckd.teacher.evaluate import MONUSEG_HOLDOUT, score_teacher, tune_postprocess
from rckd.teacher.sampling import TeacherCrops, labelled_images

__all__ = ["TeacherTrainConfig", "TeacherTask", "train_teacher", "fit_teacher", "teacher_loss",
           "load_training_images", "export_teacher", "tuning_images"]

log = logging.getLogger(__name__)

_AUTO_CROP = {"monuseg": 256, "synthetic": 128}


@dataclasses.dataclass
class TeacherTrainConfig(TrainConfig):
    """Train the learned U-Net nuclei teacher on a MoNuSeg-layout root or on the synthetic world."""

    DEFAULTS = {"out": "runs/teacher", "steps": 4000, "batch_size": 8, "lr": 2e-3, "weight_decay": 1e-4,
                "warmup_steps": 100, "workers": 1, "ckpt_every": 100, "log_every": 20,
                "image_every": 500, "eval_every": 500}

    data: str = option(default_factory=lambda: str(data_root() / "monuseg" / "train"),
                       help="MoNuSeg-layout root, or 'synthetic'")
    holdout: list[str] = option(default_factory=lambda: list(MONUSEG_HOLDOUT),
                                help="MoNuSeg image ids left out of training")
    init: str | None = option(None, help="start from this teacher checkpoint's weights (fine-tuning)")
    encoder: str = option("resnet18", help="encoder backbone (timm/rckd name, trained from scratch)")
    mpp: float = option(0.5, gt=0, help="microns per pixel the teacher runs at")
    encoder_kwargs: dict = option(default_factory=lambda: {"channels": [32, 64, 128, 256], "stem_width": 32},
                                  help="create_backbone keyword arguments (default: a half-width ResNet18)")
    width: int = option(48, ge=1, help="decoder width")
    skip: int = option(8, ge=1, help="channels of the full-resolution skip")
    crop: int | None = option(None, ge=8, help="crop side at the teacher's mpp (none: 256 MoNuSeg, 128 synthetic)")
    boundary_weight: float = option(1.0, ge=0, help="weight of the boundary channel's loss")
    synthetic_images: int = option(24, ge=1, help="synthetic tiles to train on (data=synthetic)")
    threads: int | None = option(None, ge=1, help="torch CPU threads (none: leave as is)")
    fp16: bool = option(True, help="store the finished teacher in fp16")
    tune_images: int | None = option(6, ge=1, help="MoNuSeg training images used to pick the watershed "
                                                  "thresholds (none: keep the defaults)")


def _resolved(cfg: TeacherTrainConfig) -> TeacherTrainConfig:
    crop = cfg.crop or _AUTO_CROP["synthetic" if cfg.data == "synthetic" else "monuseg"]
    return dataclasses.replace(cfg, crop=crop, warmup_steps=min(cfg.warmup_steps, max(1, cfg.steps // 10)))


def load_training_images(cfg: TeacherTrainConfig):
    """Labelled images for training: MoNuSeg minus the hold-out, or synthetic tiles."""
    if cfg.data == "synthetic":
        from rckd.data.synthetic import SyntheticDataset
        ds = SyntheticDataset(cfg.synthetic_images, seed=cfg.seed, size=256, mpp=cfg.mpp, task="nuclei")
        return labelled_images((ds[i] for i in range(len(ds))), ds.mpp), []
    from rckd.data.datasets.monuseg import MoNuSeg
    ds = MoNuSeg(cfg.data, exclude=cfg.holdout)
    if len(ds) == 0:
        raise ValueError(f"{cfg.data}: no training images left after the hold-out")
    return labelled_images((ds[i] for i in range(len(ds))), ds.mpp), ds.names


def _soft_dice(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (p.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + eps)).mean()


def teacher_loss(logits: Tensor, target: Tensor, boundary_weight: float = 1.0) -> Tensor:
    """BCE + soft Dice on each channel (nuclei, boundary); the boundary term weighted."""
    losses = [F.binary_cross_entropy_with_logits(logits[:, c:c + 1], target[:, c:c + 1])
              + _soft_dice(logits[:, c:c + 1], target[:, c:c + 1]) for c in range(logits.shape[1])]
    return losses[0] + boundary_weight * sum(losses[1:])


def _batch_dice(logits: Tensor, target: Tensor) -> Tensor:
    pred, gt = logits[:, 0] > 0, target[:, 0] > 0.5
    denom = pred.sum() + gt.sum()
    return torch.where(denom > 0, 2 * (pred & gt).sum() / denom.clamp(min=1), torch.ones((), device=denom.device))


class TeacherTask(Task):
    """The U-Net teacher and its loss as an engine task; logs the batch Dice of the nuclei map."""

    def __init__(self, model: UNetTeacher, boundary_weight: float = 1.0) -> None:
        super().__init__()
        self.model, self.boundary_weight = model, float(boundary_weight)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.model(batch["image"]).float()
        loss = teacher_loss(logits, batch["target"], self.boundary_weight)
        return loss, {"dice": _batch_dice(logits.detach(), batch["target"])}

    def panels(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x, y = batch["image"][:4], batch["target"][:4]
        maps = torch.sigmoid(self.model(x).float())
        grey = lambda m: m.expand(-1, 3, -1, -1)  # noqa: E731
        return {"teacher/image": x, "teacher/nuclei": grey(maps[:, :1]), "teacher/boundary": grey(maps[:, 1:2]),
                "teacher/target_nuclei": grey(y[:, :1])}


def _meta(cfg: TeacherTrainConfig, model: UNetTeacher, step: int, names: list[str]) -> dict:
    return {"architecture": "unet", "teacher": model.describe(), "step": step,
            "train_images": names, "holdout": list(cfg.holdout) if cfg.data != "synthetic" else [],
            "data": cfg.data, "config": to_dict(cfg)}


def fit_teacher(cfg: TeacherTrainConfig, images=None, names=None) -> tuple[UNetTeacher, FitResult]:
    """Train with :func:`rckd.engine.fit`; returns ``(teacher in eval mode, fit result)``.

    ``images`` (a list of :class:`~rckd.teacher.sampling.LabelledImage`) overrides loading
    from ``cfg.data``.
    """
    cfg = _resolved(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if images is None:
        images, names = load_training_images(cfg)
    info = init_distributed(cfg.device)
    seed_everything(cfg.seed)
    model = UNetTeacher(cfg.encoder, mpp=cfg.mpp, width=cfg.width, skip=cfg.skip,
                        encoder_kwargs=cfg.encoder_kwargs)
    if cfg.init:
        from rckd.models.weights import load_weights
        state, meta = load_weights(cfg.init)
        model.load_state_dict({k: v.float() for k, v in state.items()})
        model.postprocess_params.update((meta.get("teacher") or {}).get("postprocess") or {})
        log.info("initialised from %s", cfg.init)
    samples = cfg.steps * cfg.batch_size * cfg.accum_steps * info.world_size
    crops = TeacherCrops(images, cfg.mpp, cfg.crop, length=samples, seed=cfg.seed)
    task = TeacherTask(model, cfg.boundary_weight)
    result = fit(task, crops, cfg, meta={"arch": "unet-teacher", "mpp": cfg.mpp,
                                         "train_images": list(names or [])},
                 evaluate=_tuning_scores(cfg, list(names or [])))
    return model.eval(), result


def _tuning_scores(cfg: TeacherTrainConfig, names: list[str]):
    """Engine hook: Dice/AJI/PQ on the tuning images (training images) every ``eval_every`` steps."""
    if not (cfg.eval_every and cfg.tune_images and names and cfg.data != "synthetic"):
        return None
    from rckd.data.datasets.monuseg import MoNuSeg
    dataset = MoNuSeg(cfg.data, names=tuning_images(names, cfg.tune_images))

    def evaluate(task: TeacherTask, step: int) -> dict[str, float]:
        task.model.eval()
        scores = score_teacher(task.model, dataset, names_log=False)
        task.model.train()
        log.info("step %d on %d tuning (training) images: dice %.4f aji %.4f pq %.4f", step, len(dataset),
                 scores["dice"], scores["aji"], scores["pq"])
        return {f"tune/{k}": scores[k] for k in ("dice", "aji", "pq")}

    return evaluate


def tuning_images(names: list[str], n: int) -> list[str]:
    """``n`` training images spread over the sorted list (never hold-out images)."""
    names = sorted(names)
    return [names[i] for i in np.linspace(0, len(names) - 1, num=min(n, len(names))).round().astype(int)]


def _tune(cfg: TeacherTrainConfig, model: UNetTeacher, names: list[str]):
    from rckd.data.datasets.monuseg import MoNuSeg
    chosen = tuning_images(names, cfg.tune_images)
    params, table = tune_postprocess(model, MoNuSeg(cfg.data, names=chosen))
    log.info("post-processing tuned on training images %s: %s", chosen, params)
    return params, {"images": chosen, "chosen": params, "table": table}


def train_teacher(cfg: TeacherTrainConfig) -> int:
    """CLI entry: train, then write ``<out>/teacher.safetensors`` + JSON and ``train.json``."""
    cfg = _resolved(cfg)
    out = Path(cfg.out)
    images, names = load_training_images(cfg)
    info = init_distributed(cfg.device)
    try:
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        log.info("training on %d images (%s), teacher at %.3g mpp", len(images), cfg.data, cfg.mpp)
        model, result = fit_teacher(cfg, images, names)
        if info.is_main:
            _export(cfg, model, result, names)
    finally:
        cleanup()
    return 0


def _export(cfg: TeacherTrainConfig, model: UNetTeacher, result: FitResult, names: list[str]) -> Path:
    from rckd.models.weights import save_weights
    out = Path(cfg.out)
    if cfg.tune_images and cfg.data != "synthetic":
        model.postprocess_params, table = _tune(cfg, model, names)
        write_json(out / "postprocess_tuning.json", table)
    state = {k: (v.half() if cfg.fp16 and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    meta = _meta(cfg, model, result.step, names)
    meta.update(wall_seconds=round(result.seconds, 1), dtype="float16" if cfg.fp16 else "float32")
    path = save_weights(state, out / "teacher", meta)
    write_json(out / "train.json", {"steps": result.step, "seconds": result.seconds,
                                    "images_per_s": result.images_per_s,
                                    "final": result.history[-1] if result.history else {},
                                    "train_images": names, "holdout": meta["holdout"]})
    log.info("teacher written to %s (%d steps, %.0f s)", path, result.step, result.seconds)
    return path


def export_teacher(src: str | Path, dst: str | Path, teacher: dict | None = None,
                   extra_meta: dict | None = None, fp16: bool = True) -> Path:
    """Re-save a teacher checkpoint (fp16 by default) as ``<dst>.safetensors`` + JSON.

    ``teacher`` updates the checkpoint's teacher description (e.g. ``postprocess``, ``tta``,
    ``name``); ``extra_meta`` is merged into the top level of the JSON.
    """
    from rckd.models.weights import load_weights, save_weights
    state, meta = load_weights(src)
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "format", "num_tensors", "num_params", "file")}
    meta["teacher"] = {**meta["teacher"], **(teacher or {})}
    meta.update(extra_meta or {})
    meta["dtype"] = "float16" if fp16 else "float32"
    state = {k: (v.half() if fp16 and v.is_floating_point() else v.float() if v.is_floating_point() else v)
             for k, v in state.items()}
    return save_weights(state, dst, meta)
