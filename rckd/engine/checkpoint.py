"""Atomic training checkpoints, resumable only under the same config.

Layout under ``<out>/checkpoints/``::

    step_00000100/state.safetensors   every tensor of the task (model, heads, queues, EMA)
    step_00000100/state.json          meta: resolved config, step, architecture, sha256
    step_00000100/resume.pt           optimizer, grad scaler, per-rank RNG states (tensors only)
    latest.json                       {"step": 100, "dir": "step_00000100"}, written last

Weights go through :func:`rckd.weightfile.save_weights` (safetensors + JSON, no pickle); the
resume file is read with ``torch.load(weights_only=True)``. ``latest.json`` is replaced only after
a checkpoint is complete, so a crash mid-save leaves the previous one in charge.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rckd.io import atomic_path, read_json, write_json
from rckd.weightfile import load_weights, save_weights

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "read_resume", "config_differences",
           "rng_state", "set_rng_state", "CHECKPOINT_DIR"]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) RNG states as tensors/ints (``weights_only`` safe)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": torch.tensor(mt, dtype=torch.int64), "python_version": version,
             "python_gauss": gauss,
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": int(pos),
             "numpy_has_gauss": int(has_gauss), "numpy_cached": float(cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate((state["python_version"], tuple(state["python"].tolist()), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: str | Path, step: int, state_dict: dict[str, torch.Tensor],
                    resume: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` under ``<out>/checkpoints`` and point ``latest.json`` at it.

    ``keep`` most recent checkpoints are kept (older ones removed after the pointer moves).
    Returns the checkpoint folder.
    """
    root = Path(out) / CHECKPOINT_DIR
    folder = root / f"step_{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_weights(tensors, folder / "state", {**meta, "step": step})
    with atomic_path(folder / "resume.pt") as tmp:
        torch.save({**resume, "step": step}, tmp)
    write_json(root / "latest.json", {"step": step, "dir": folder.name})
    old = sorted(p for p in root.glob("step_*") if p.is_dir() and p != folder)
    for p in old[:max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return folder


def latest_checkpoint(out: str | Path) -> Path | None:
    """The folder ``latest.json`` points to under ``<out>/checkpoints``, or None."""
    pointer = Path(out) / CHECKPOINT_DIR / "latest.json"
    if not pointer.is_file():
        return None
    folder = pointer.parent / read_json(pointer)["dir"]
    if not (folder / "resume.pt").is_file():
        raise FileNotFoundError(f"{pointer}: points to {folder.name}, which is incomplete")
    return folder


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Return ``(state_dict, meta, resume)`` of a checkpoint folder (checksums verified)."""
    folder = Path(folder)
    state, meta = load_weights(folder / "state")
    resume = read_resume(folder / "resume.pt")
    if resume.get("step") != meta.get("step"):
        raise ValueError(f"{folder}: weights (step {meta.get('step')}) and resume file "
                         f"(step {resume.get('step')}) disagree")
    return state, meta, resume


def read_resume(path: str | Path) -> dict[str, Any]:
    """The training state in a ``resume.pt``, read without pickle (``weights_only=True``).

    A truncated file, or one that needs pickle, raises ``ValueError`` naming it.
    """
    try:
        resume = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: cannot read the training state ({reason}); remove that checkpoint "
                         "or start over with resume=false") from None
    if not isinstance(resume, dict):
        raise ValueError(f"{path}: not an rckd training state (a {type(resume).__name__}, not a mapping)")
    return resume


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def config_differences(saved: dict, current: dict, ignore: set[str] | frozenset[str] = frozenset()
                       ) -> list[str]:
    """Human-readable ``key: saved -> current`` lines for keys that differ (``ignore`` skipped)."""
    a, b = _flatten(saved), _flatten(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or key.split(".")[-1] in ignore:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return diffs
