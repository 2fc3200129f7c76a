"""Device choice and seeding, shared by every command."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from rckd.config.fields import device_spec

__all__ = ["resolve_device", "seed_everything"]

log = logging.getLogger(__name__)


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """A device from its name: ``auto`` (or None) is CUDA when available, else CPU.

    Names are ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` in any case; anything else, or a
    device this machine lacks, raises ``ValueError`` with one line.
    """
    if isinstance(spec, torch.device):
        return spec
    name = "auto" if spec is None else device_spec(spec)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA "
                         "device(s) are visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {spec!r} requested but MPS is not available (use --device cpu)")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally ask torch for determinism."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
