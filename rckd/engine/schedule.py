"""Learning-rate schedule: linear warm-up then cosine decay, as a pure function of the step."""

from __future__ import annotations

import math

import torch

__all__ = ["cosine_with_warmup", "set_lr"]


def cosine_with_warmup(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0,
                       min_lr: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based): linear ramp over ``warmup_steps``, then cosine to ``min_lr``.

    The warm-up ramps ``base_lr * (step + 1) / warmup_steps`` so the first step is not zero;
    after ``total_steps`` the rate stays at ``min_lr``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate to ``lr`` times its ``lr_scale`` (default 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
