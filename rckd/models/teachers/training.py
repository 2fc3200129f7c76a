"""``rckd teacher train``: fit the U-Net nuclei teacher on MoNuSeg (or the synthetic world).

The loop: random crops at the teacher's mpp (:class:`~rckd.models.teachers.sampling.CropSampler`),
loss = BCE + soft Dice on the nuclei channel plus BCE + soft Dice on the boundary channel, AdamW with
linear warm-up and cosine decay. The schedule's progress is ``max(step / steps, elapsed / budget)``
so a wall-clock budget (``--minutes``) ends with a fully decayed learning rate. Weights are
checkpointed to ``<out>/last.safetensors`` (+ JSON) with the optimizer state in
``<out>/last.state.pt``; ``--resume`` continues from them (the step count and elapsed time carry
over, so the schedule goes on where it stopped). ``--resume --restart-schedule`` instead starts a
new warm-up + cosine from the checkpoint (a warm restart): ``--steps`` and ``--minutes`` then count
from the resume point. The finished teacher is
``<out>/teacher.safetensors`` (fp16 when ``--fp16``), loadable by ``get_teacher(path)``.

``data`` is a MoNuSeg-layout root (``holdout`` images are left out) or ``"synthetic"``, which trains
a small teacher on the synthetic world's exact nuclei masks in about a minute on a CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rckd.config import RunConfig, option, save_config, to_dict
from rckd.io import write_json
from rckd.models.teachers.sampling import CropSampler, labelled_images
from rckd.models.teachers.unet import UNetTeacher
from rckd.runtime import resolve_device, seed_everything

__all__ = ["TeacherTrainConfig", "train_teacher", "fit_teacher", "teacher_loss", "load_training_images",
           "export_teacher", "MONUSEG_HOLDOUT"]

log = logging.getLogger(__name__)

# Fixed before training: every fifth image of the sorted 30 shared training ids, from the third.
MONUSEG_HOLDOUT = ("TCGA-21-5786-01Z-00-DX1", "TCGA-A7-A13F-01Z-00-DX1", "TCGA-B0-5710-01Z-00-DX1",
                   "TCGA-E2-A1B5-01Z-00-DX1", "TCGA-G9-6362-01Z-00-DX1", "TCGA-KB-A93J-01A-01-TS1")
_AUTO = {"monuseg": {"steps": 4000, "crop": 256, "batch_size": 8},
         "synthetic": {"steps": 60, "crop": 128, "batch_size": 8}}


@dataclasses.dataclass
class TeacherTrainConfig(RunConfig):
    """Train the learned U-Net nuclei teacher on a MoNuSeg-layout root or on the synthetic world."""

    out: str = option("runs/teacher", help="output folder")
    data: str = option("../shared/data/monuseg/train", help="MoNuSeg-layout root, or 'synthetic'")
    holdout: list[str] = option(default_factory=lambda: list(MONUSEG_HOLDOUT),
                                help="MoNuSeg image ids left out of training")
    encoder: str = option("resnet18", help="encoder backbone (timm/rckd name, trained from scratch)")
    mpp: float = option(0.5, help="microns per pixel the teacher runs at")
    encoder_kwargs: dict = option(default_factory=lambda: {"channels": [32, 64, 128, 256], "stem_width": 32},
                                  help="create_backbone keyword arguments (default: a half-width ResNet18)")
    width: int = option(48, help="decoder width")
    skip: int = option(8, help="channels of the full-resolution skip")
    steps: int = option(0, help="optimizer steps (0: 4000 for MoNuSeg, 60 for synthetic)")
    minutes: float = option(0.0, help="wall-clock budget in minutes (0: none); ends the cosine early")
    crop: int = option(0, help="crop side at the teacher's mpp (0: 256 MoNuSeg, 128 synthetic)")
    batch_size: int = option(0, help="crops per step (0: 8)")
    lr: float = option(2e-3, help="peak AdamW learning rate")
    weight_decay: float = option(1e-4, help="AdamW weight decay")
    warmup: int = option(100, help="linear warm-up steps (at most a tenth of the steps)")
    boundary_weight: float = option(1.0, help="weight of the boundary channel's loss")
    synthetic_images: int = option(24, help="synthetic tiles to train on (data=synthetic)")
    checkpoint_every: int = option(100, help="steps between checkpoints")
    log_every: int = option(20, help="steps between log lines")
    threads: int = option(0, help="torch CPU threads (0: leave as is)")
    channels_last: bool = option(True, help="channels-last memory format (faster convolutions on CPU)")
    resume: bool = option(False, help="continue from <out>/last.* if present")
    restart_schedule: bool = option(False, help="with --resume: new warm-up + cosine from the checkpoint; "
                                    "--steps and --minutes count from there (warm restart)")
    fp16: bool = option(True, help="store the finished teacher in fp16")
    tune_images: int = option(6, help="MoNuSeg training images used to pick the watershed thresholds (0: defaults)")


def _resolved(cfg: TeacherTrainConfig) -> TeacherTrainConfig:
    auto = _AUTO["synthetic" if cfg.data == "synthetic" else "monuseg"]
    return dataclasses.replace(cfg, **{k: v for k, v in auto.items() if not getattr(cfg, k)})


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


def _soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (p.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + eps)).mean()


def teacher_loss(logits: torch.Tensor, target: torch.Tensor, boundary_weight: float = 1.0) -> torch.Tensor:
    """BCE + soft Dice on each channel (nuclei, boundary); the boundary term weighted."""
    losses = [F.binary_cross_entropy_with_logits(logits[:, c:c + 1], target[:, c:c + 1])
              + _soft_dice(logits[:, c:c + 1], target[:, c:c + 1]) for c in range(logits.shape[1])]
    return losses[0] + boundary_weight * sum(losses[1:])


def _batch_dice(logits: torch.Tensor, target: torch.Tensor) -> float:
    pred, gt = logits[:, 0] > 0, target[:, 0] > 0.5
    denom = pred.sum() + gt.sum()
    return 1.0 if denom == 0 else float(2 * (pred & gt).sum() / denom)


def _lr_factor(progress: float, step: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _meta(cfg: TeacherTrainConfig, model: UNetTeacher, step: int, names: list[str]) -> dict:
    return {"architecture": "unet", "teacher": model.describe(), "step": step,
            "train_images": names, "holdout": list(cfg.holdout) if cfg.data != "synthetic" else [],
            "data": cfg.data, "config": to_dict(cfg)}


def _save(model: UNetTeacher, opt, cfg, out: Path, step: int, elapsed: float, names, history) -> None:
    from rckd.models.weights import save_weights
    from rckd.io import atomic_path
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "last.state.pt") as tmp:
        torch.save({"optimizer": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "history": history}, tmp)
    save_weights(model.state_dict(), out / "last", _meta(cfg, model, step, names))


def fit_teacher(cfg: TeacherTrainConfig, images=None, names=None) -> tuple[UNetTeacher, dict]:
    """Train and return ``(teacher, history)``; ``history`` has per-step ``loss``, ``dice`` and ``lr``.

    ``images`` (a list of :class:`LabelledImage`) overrides loading from ``cfg.data``.
    Checkpoints go to ``cfg.out`` every ``cfg.checkpoint_every`` steps (0 = never).
    """
    cfg = _resolved(cfg)
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if images is None:
        images, names = load_training_images(cfg)
    names = list(names or [])
    out = Path(cfg.out)
    model = UNetTeacher(cfg.encoder, mpp=cfg.mpp, width=cfg.width, skip=cfg.skip,
                        encoder_kwargs=cfg.encoder_kwargs).to(device)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = CropSampler(images, cfg.mpp, cfg.crop, seed=cfg.seed)
    step, elapsed0, history = 0, 0.0, {"loss": [], "dice": [], "lr": []}
    if cfg.resume and (out / "last.state.pt").is_file():
        from rckd.models.weights import load_weights
        state, _ = load_weights(out / "last")
        model.load_state_dict(state)
        model = model.to(memory_format=fmt)
        st = torch.load(out / "last.state.pt", weights_only=True)
        opt.load_state_dict(st["optimizer"])
        step, elapsed0, history = int(st["step"]), float(st["elapsed"]), st["history"]
        sampler = CropSampler(images, cfg.mpp, cfg.crop, seed=cfg.seed + step)
        history.setdefault("lr", [])  # checkpoints from before the lr was recorded
        log.info("resumed from %s at step %d", out / "last", step)
    budget, start_step = cfg.minutes * 60.0, step
    t0 = time.time() - elapsed0
    # schedule origin: 0 (the run's start) or, for a warm restart, the resume point
    s0, ts0 = (step, time.time()) if cfg.restart_schedule else (0, t0)
    model.train()
    while step - s0 < cfg.steps:
        progress = max((step - s0) / cfg.steps, (time.time() - ts0) / budget if budget else 0.0)
        if progress >= 1.0:
            log.info("wall-clock budget of %.1f min reached at step %d", cfg.minutes, step)
            break
        for g in opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(progress, step - s0, min(cfg.warmup, max(1, cfg.steps // 10)))
        x, y = sampler.batch(cfg.batch_size)
        x, y = x.to(device).contiguous(memory_format=fmt), y.to(device)
        logits = model(x)
        loss = teacher_loss(logits, y, cfg.boundary_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}; last good checkpoint kept in {out}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        history["loss"].append(float(loss.detach()))
        history["dice"].append(_batch_dice(logits.detach(), y))
        history["lr"].append(opt.param_groups[0]["lr"])
        if cfg.log_every and step % cfg.log_every == 0:
            k = cfg.log_every
            log.info("step %d loss %.4f dice %.3f lr %.2e %.0fs", step, np.mean(history["loss"][-k:]),
                     np.mean(history["dice"][-k:]), opt.param_groups[0]["lr"], time.time() - t0)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            _save(model, opt, cfg, out, step, time.time() - t0, names, history)
    history["steps"] = step
    history["seconds"] = time.time() - t0
    history["session_steps"] = step - start_step
    model.eval()
    return model, history


def tuning_images(names: list[str], n: int) -> list[str]:
    """``n`` training images spread over the sorted list (never hold-out images)."""
    names = sorted(names)
    return [names[i] for i in np.linspace(0, len(names) - 1, num=min(n, len(names))).round().astype(int)]


def _tune(cfg: TeacherTrainConfig, model: UNetTeacher, names: list[str]):
    from rckd.data.datasets.monuseg import MoNuSeg
    from rckd.models.teachers.evaluate import tune_postprocess
    chosen = tuning_images(names, cfg.tune_images)
    params, table = tune_postprocess(model, MoNuSeg(cfg.data, names=chosen))
    log.info("post-processing tuned on training images %s: %s", chosen, params)
    return params, {"images": chosen, "chosen": params, "table": table}


def train_teacher(cfg: TeacherTrainConfig) -> int:
    """CLI entry: train, then write ``<out>/teacher.safetensors`` + JSON and ``train.json``."""
    from rckd.models.weights import save_weights
    cfg = _resolved(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    images, names = load_training_images(cfg)
    log.info("training on %d images (%s), teacher at %.3g mpp", len(images), cfg.data, cfg.mpp)
    model, history = fit_teacher(cfg, images, names)
    if cfg.tune_images and cfg.data != "synthetic":
        model.postprocess_params, table = _tune(cfg, model, names)
        write_json(out / "postprocess_tuning.json", table)
    state = {k: (v.half() if cfg.fp16 and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    meta = _meta(cfg, model, history["steps"], names)
    meta.update(wall_seconds=round(history["seconds"], 1), dtype="float16" if cfg.fp16 else "float32")
    path = save_weights(state, out / "teacher", meta)
    write_json(out / "train.json", {"steps": history["steps"], "seconds": history["seconds"],
                                    "final_loss": float(np.mean(history["loss"][-20:] or [float("nan")])),
                                    "final_dice": float(np.mean(history["dice"][-20:] or [float("nan")])),
                                    "train_images": names, "holdout": meta["holdout"]})
    log.info("teacher written to %s (%d steps, %.0f s)", path, history["steps"], history["seconds"])
    return 0


def export_teacher(src: str | Path, dst: str | Path, postprocess: dict | None = None,
                   extra_meta: dict | None = None, fp16: bool = True) -> Path:
    """Re-save a teacher checkpoint (fp16 by default) with updated post-processing and meta."""
    from rckd.models.weights import load_weights, save_weights
    state, meta = load_weights(src)
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "format", "num_tensors", "num_params", "file")}
    if postprocess:
        meta["teacher"] = {**meta["teacher"], "postprocess": dict(postprocess)}
    meta.update(extra_meta or {})
    meta["dtype"] = "float16" if fp16 else "float32"
    state = {k: (v.half() if fp16 and v.is_floating_point() else v.float() if v.is_floating_point() else v)
             for k, v in state.items()}
    return save_weights(state, dst, meta)
