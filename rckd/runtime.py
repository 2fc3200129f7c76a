"""Device choice and seeding, shared by every command."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

__all__ = ["resolve_device", "seed_everything"]

log = logging.getLogger(__name__)


def resolve_device(spec: str = "auto") -> torch.device:
    """Map ``'auto'`` to CUDA when available, else CPU; validate explicit devices."""
    if spec in ("", "auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available (use --device cpu)")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally ask torch for determinism."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
