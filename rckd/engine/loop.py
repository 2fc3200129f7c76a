"""The one training loop (:func:`fit`), its options (:class:`TrainConfig`) and the Task protocol."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from rckd.config import RunConfig, option, to_dict
from rckd.engine import checkpoint as ckpt
from rckd.engine.distributed import StepBatchSampler, all_reduce_mean, barrier, init_distributed, is_dist
from rckd.engine.logging import RunLogger
from rckd.engine.schedule import cosine_with_warmup, set_lr
from rckd.runtime import seed_everything

__all__ = ["TrainConfig", "Task", "FitResult", "NonFiniteLossError", "fit", "autocast_dtype",
           "RESUME_IGNORED"]

log = logging.getLogger(__name__)

#: Config keys that may change between an interrupted run and its resumption.
RESUME_IGNORED = frozenset({"out", "device", "workers", "log_every", "image_every", "ckpt_every",
                            "keep_checkpoints", "resume", "compile", "eval_every", "tensorboard"})


@dataclasses.dataclass
class TrainConfig(RunConfig):
    """Training-engine options shared by pretraining and fine-tuning (inherit from this)."""

    steps: int = option(1000, ge=1, help="optimizer steps")
    batch_size: int = option(64, ge=1, help="images per process per micro-batch (global batch = "
                                            "batch_size x processes x accum_steps)")
    accum_steps: int = option(1, ge=1, help="micro-batches accumulated per optimizer step")
    lr: float = option(1e-3, gt=0, help="peak learning rate")
    min_lr: float = option(0.0, ge=0, help="final learning rate of the cosine")
    warmup_steps: int = option(0, ge=0, help="linear warm-up steps")
    weight_decay: float = option(0.05, ge=0, help="decoupled weight decay (not on norms/biases)")
    optimizer: str = option("adamw", help="optimizer", choices=("adamw", "sgd"))
    grad_clip: float | None = option(None, gt=0, help="clip the gradient norm to this (none: off)")
    precision: str = option("auto", help="autocast: auto (bf16/fp16 on CUDA, fp32 on CPU), "
                                         "fp32, bf16, fp16", choices=("auto", "fp32", "bf16", "fp16"))
    channels_last: bool = option(True, help="channels_last memory format for conv nets")
    compile: bool = option(False, help="torch.compile the task's compile targets")
    workers: int = option(2, ge=0, help="DataLoader worker processes per rank")
    ckpt_every: int | None = option(None, ge=1, help="checkpoint every N steps (none: only at the end)")
    keep_checkpoints: int = option(2, ge=1, help="checkpoints kept on disk")
    log_every: int = option(10, ge=1, help="log scalars every N steps")
    image_every: int | None = option(None, ge=1, help="log image panels every N steps (none: off)")
    eval_every: int | None = option(None, ge=1, help="call the evaluation hook every N steps (none: off)")
    resume: bool = option(True, help="resume from <out>/checkpoints when the config matches")
    deterministic: bool = option(False, help="ask torch for deterministic algorithms")
    tensorboard: bool = option(True, help="write TensorBoard events to <out>/tb")


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; training stopped with the last good checkpoint kept.

    A ``ValueError`` so that the command line reports it as one line and exits 2.
    """


class Task(nn.Module):
    """A training method. Subclasses implement ``forward(batch) -> (loss, logs)``.

    ``batch`` is the collated sample dict already on the device; ``logs`` maps names to detached
    scalar tensors (logged as ``train/<name>``). Optional hooks: :meth:`setup` (after the move
    to the device), :meth:`after_step` (after each optimizer step: EMA/momentum updates),
    :meth:`panels` (images for TensorBoard), :meth:`param_groups`, :meth:`compile_targets`.
    Set ``find_unused_parameters = True`` on tasks whose loss leaves trainable parameters unused
    (DDP must then look for them every step).
    """

    find_unused_parameters: bool = False

    def setup(self, device: torch.device) -> None:
        """Move anything that is not a registered submodule (e.g. a frozen teacher)."""

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after optimizer step ``step`` (1-based count of steps done)."""

    def panels(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Image panels {name: (B, C, H, W) in [0, 1]} for TensorBoard."""
        return {}

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Decay for weights (ndim >= 2), none for norms and biases; frozen params skipped."""
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    def compile_targets(self) -> list[nn.Module]:
        """Submodules compiled in place when ``compile`` is on (default: every child)."""
        return list(self.children())


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: last step, checkpoint folder, logged rows and timing."""

    out: Path
    step: int
    checkpoint: Path | None
    history: list[dict[str, float]]
    seconds: float
    images_per_s: float


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: full fp32)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _optimizer(task: Task, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [g for g in task.param_groups(cfg.weight_decay) if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _resume(task, optimizer, scaler, cfg, run_config, rank) -> tuple[int, dict | None]:
    folder = ckpt.latest_checkpoint(cfg.out) if cfg.resume else None
    if folder is None:
        return 0, None
    state, meta, resume = ckpt.load_checkpoint(folder)
    diffs = ckpt.config_differences(meta.get("config", {}), run_config, RESUME_IGNORED)
    if diffs:
        raise ValueError(f"{folder}: refusing to resume, the saved config differs ({'; '.join(diffs)});"
                         " use another --out, or resume=false to start this folder over")
    task.load_state_dict(state)
    optimizer.load_state_dict(resume["optimizer"])
    scaler.load_state_dict(resume["scaler"])
    log.info("resuming %s from step %d", cfg.out, meta["step"])
    return int(meta["step"]), resume["rng"][min(rank, len(resume["rng"]) - 1)]


def _save(task, optimizer, scaler, cfg, run_config, step, meta) -> Path | None:
    rngs = [ckpt.rng_state()]
    if is_dist():
        gathered: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, rngs[0])
        rngs = gathered
    folder = None
    if not is_dist() or torch.distributed.get_rank() == 0:
        folder = ckpt.save_checkpoint(cfg.out, step, task.state_dict(),
                                      {"optimizer": optimizer.state_dict(),
                                       "scaler": scaler.state_dict(), "rng": rngs},
                                      {**meta, "config": run_config}, keep=cfg.keep_checkpoints)
    barrier()
    return folder


def fit(task: Task, dataset: Dataset, cfg: TrainConfig, *, config: dict | None = None,
        meta: dict | None = None, collate_fn: Callable | None = None,
        evaluate: Callable[[Task, int], dict[str, float]] | None = None) -> FitResult:
    """Train ``task`` on ``dataset`` for ``cfg.steps`` optimizer steps; see :mod:`rckd.engine`."""
    info = init_distributed(cfg.device)
    seed_everything(cfg.seed + info.rank, deterministic=cfg.deterministic)
    torch.backends.cudnn.benchmark = not cfg.deterministic
    run_config = {**(config or to_dict(cfg)), "world_size": info.world_size}
    task.to(info.device, memory_format=torch.channels_last) if cfg.channels_last else task.to(info.device)
    task.setup(info.device)
    dtype = autocast_dtype(cfg.precision, info.device)
    scaler = torch.amp.GradScaler(info.device.type, enabled=dtype == torch.float16)
    optimizer = _optimizer(task, cfg)
    start, rng = _resume(task, optimizer, scaler, cfg, run_config, info.rank)
    if not cfg.resume and info.is_main:  # starting over: no stale checkpoints of an earlier run
        shutil.rmtree(Path(cfg.out) / ckpt.CHECKPOINT_DIR, ignore_errors=True)
    barrier()
    if cfg.compile:
        for module in task.compile_targets():
            module.compile()
    model = (nn.parallel.DistributedDataParallel(
        task, device_ids=[info.device] if info.device.type == "cuda" else None,
        find_unused_parameters=task.find_unused_parameters) if is_dist() else task)
    accum = cfg.accum_steps
    sampler = StepBatchSampler(len(dataset), cfg.batch_size, cfg.steps * accum, start * accum,
                               info.world_size, info.rank, cfg.seed,
                               keyed=getattr(dataset, "keyed_draws", False))
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers, collate_fn=collate_fn,
                        pin_memory=info.device.type == "cuda", persistent_workers=cfg.workers > 0,
                        prefetch_factor=4 if cfg.workers > 0 else None)
    batches = iter(loader)
    if rng is not None:
        ckpt.set_rng_state(rng)
    logger = RunLogger(cfg.out, enabled=info.is_main, start_step=start, tensorboard=cfg.tensorboard)
    meta, history, pending, last_good = meta or {}, [], [], ckpt.latest_checkpoint(cfg.out) if start else None
    images_per_step = cfg.batch_size * info.world_size * accum
    t_start = t_log = time.perf_counter()
    data_time, step, folder = 0.0, start, last_good

    def flush(step: int) -> None:  # reduce pending losses over ranks; stop on NaN/inf (before any save)
        nonlocal t_log, data_time, pending
        losses = all_reduce_mean(torch.stack([p[0] for p in pending]))
        norms = all_reduce_mean(torch.stack([p[2] for p in pending]))
        first = [(int((~torch.isfinite(v)).nonzero()[0]), what, v) for what, v in
                 (("loss", losses), ("gradient norm", norms)) if not torch.isfinite(v).all()]
        if first:  # the earliest step wins; a NaN loss also gives NaN gradients, so it comes first
            i, what, values = min(first, key=lambda f: f[0])
            where = f"{last_good} (step {last_good.name.split('_')[-1].lstrip('0') or 0})" if last_good else "none yet"
            raise NonFiniteLossError(f"{what} became {values[i].item()} at step {step - len(pending) + 1 + i}; "
                                     f"training stopped. Last good checkpoint: {where}")
        elapsed = time.perf_counter() - t_log
        row = {"train/loss": losses.mean().item(), "train/lr": optimizer.param_groups[0]["lr"],
               "train/grad_norm": norms.mean().item(),
               "perf/images_per_s": images_per_step * len(pending) / max(elapsed, 1e-9),
               "perf/data_fraction": data_time / max(elapsed, 1e-9),
               **{f"train/{k}": v for k, v in _reduce_logs(pending).items()}}
        logger.scalars(step, row)
        history.append({"step": step, **row})
        bar.set_postfix(loss=f"{row['train/loss']:.4f}", img_s=f"{row['perf/images_per_s']:.1f}", refresh=False)
        t_log, data_time, pending = time.perf_counter(), 0.0, []

    model.train()
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", disable=None if info.is_main else True,
               mininterval=2.0, dynamic_ncols=True, leave=False)
    try:
        for step in range(start + 1, cfg.steps + 1):
            set_lr(optimizer, cosine_with_warmup(step - 1, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.min_lr))
            step_loss = 0.0
            for micro in range(accum):
                t0 = time.perf_counter()
                batch = _to_device(next(batches), info.device)
                data_time += time.perf_counter() - t0
                with model.no_sync() if is_dist() and micro < accum - 1 else contextlib.nullcontext():
                    with torch.autocast(info.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        loss, logs = model(batch)
                    scaler.scale(loss / accum).backward()
                step_loss = step_loss + loss.detach().float() / accum
            grad_norm = _grad_norm(task, optimizer, scaler, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            task.after_step(step, cfg.steps)
            pending.append((step_loss, {k: v.detach().float() for k, v in logs.items()}, grad_norm))
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
                flush(step)
            if cfg.image_every and step % cfg.image_every == 0 and info.is_main:
                with torch.no_grad():
                    logger.images(step, task.panels(batch))
            if evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                logger.scalars(step, evaluate(task, step) or {})
            if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps:
                folder = last_good = _save(task, optimizer, scaler, cfg, run_config, step, meta)
    finally:
        bar.close()
        logger.close()
    seconds = time.perf_counter() - t_start
    done = step - start
    return FitResult(Path(cfg.out), step, folder, history, seconds,
                     images_per_step * done / seconds if done else math.nan)


def _grad_norm(task: Task, optimizer, scaler, clip: float | None) -> Tensor:
    """The total gradient norm (clipped to ``clip`` unless None), checked at the next log flush.

    A finite loss can still give NaN gradients; they are caught before any checkpoint is saved.
    With an fp16 loss scaler, inf/NaN gradients are the scaler's business (it skips the step), so
    the norm is reported as 0 there unless clipping unscaled the gradients.
    """
    params = [p for p in task.parameters() if p.grad is not None]
    if scaler.is_enabled() and not clip:
        return torch.zeros((), device=params[0].device if params else "cpu")
    if scaler.is_enabled():
        scaler.unscale_(optimizer)
    if clip:
        norm = nn.utils.clip_grad_norm_(params, clip)
        return norm if not scaler.is_enabled() else torch.nan_to_num(norm, nan=0.0, posinf=0.0)
    return nn.utils.get_total_norm([p.grad for p in params]).float()


def _reduce_logs(pending: Sequence[tuple[Tensor, dict[str, Tensor], Tensor]]) -> dict[str, float]:
    """Mean over the pending steps and over ranks of each task log value."""
    if not pending or not pending[0][1]:
        return {}
    keys = sorted(pending[0][1])
    stacked = torch.stack([torch.stack([p[1][k].reshape(()) for k in keys]) for p in pending]).mean(0)
    return dict(zip(keys, all_reduce_mean(stacked).cpu().tolist()))
