"""Weights for the models: shipped files pinned by checksum, rckd checkpoints, foreign formats.

Our own files (safetensors beside a JSON sidecar) are written and read by :mod:`rckd.weightfile`
(re-exported here). ``verify_pinned`` checks a shipped file (``WEIGHTS_DIR``) and its sidecar
against checksums pinned in the code. ``read_state_dict`` also reads foreign timm-format files
(``.safetensors`` without a sidecar, or ``.pth``/``.pt``/``.bin`` through
``torch.load(weights_only=True)``); ``detect_prefix`` finds the key prefix that maps a file's keys
onto a model's.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from rckd.io import sha256_file
from rckd.weightfile import FORMAT, load_weights, save_weights, weights_paths

__all__ = ["save_weights", "load_weights", "read_state_dict", "weights_paths", "detect_prefix", "FORMAT",
           "WEIGHTS_DIR", "verify_pinned", "check_pinned", "to_half"]

#: the weight files shipped inside the package (teacher, pretrained students)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")


def verify_pinned(path: str | os.PathLike, sha256: str, sidecar_sha256: str, what: str) -> Path:
    """Check a shipped weight file and its JSON sidecar against checksums pinned in the code.

    Returns the ``.safetensors`` path. Raises ``FileNotFoundError`` (missing file) or
    ``ValueError`` (either checksum differs: the file was replaced or the sidecar edited).
    """
    st_path, json_path = weights_paths(path)
    check_pinned(st_path, sha256, what)
    check_pinned(json_path, sidecar_sha256, what)
    return st_path


def check_pinned(path: Path, pinned: str, what: str) -> None:
    """One file against its pinned sha256 (``FileNotFoundError`` / ``ValueError`` naming it)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file of {what} not found (reinstall rckd)")
    actual = sha256_file(path)
    if actual != pinned:
        raise ValueError(f"{path}: sha256 {actual[:16]}... does not match the pinned {pinned[:16]}... "
                         f"of {what} (file corrupt, replaced or edited)")


def to_half(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors as fp16 (for shipping); integer buffers unchanged."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside a torch checkpoint (``state_dict``, ``model``, ... nesting)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        if isinstance(obj, Mapping):
            nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
            if nested is not None:
                obj = nested
                continue
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
        break
    raise ValueError(f"{path}: no state dict of tensors found in this checkpoint")


def read_state_dict(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read any supported weight file and return ``(state_dict, meta)``.

    * our checkpoints (``.safetensors`` + ``.json`` sidecar, or the stem): checksum verified;
    * a bare ``.safetensors`` (timm / Hugging Face format): ``meta`` is ``{}``;
    * ``.pth``/``.pt``/``.bin``/``.ckpt``: ``torch.load(weights_only=True)``, nested
      ``state_dict``/``model``/``state_dict_ema`` entries unwrapped.
    """
    path = Path(path)
    st_path, json_path = weights_paths(path)
    if path.suffix in ("", ".json", ".safetensors") and json_path.is_file() and st_path.is_file():
        return load_weights(path, device)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights file not found")
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device=str(device)), {}
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError...: one line naming the file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{path}: not a readable safetensors file ({reason})") from None
    if path.suffix in _TORCH_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights file not found")
        try:
            obj = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # unpickling refused or corrupt file
            raise ValueError(f"{path}: cannot read as a weights-only torch checkpoint ({exc})") from exc
        return _unwrap(obj, path), {}
    if not path.exists() and not st_path.exists():
        raise FileNotFoundError(f"{path}: weights file not found")
    raise ValueError(f"{path}: unknown weights format (expected .safetensors, .pth, .pt, .bin "
                     f"or an rckd checkpoint stem)")


def detect_prefix(keys: Iterable[str], target: set[str]) -> str:
    """The prefix that, stripped, maps most file keys onto target keys ('' if none does)."""
    votes: Counter[str] = Counter()
    by_last: dict[str, list[str]] = {}
    for t in target:
        by_last.setdefault(t.rsplit(".", 1)[-1], []).append(t)
    for k in keys:
        for t in by_last.get(k.rsplit(".", 1)[-1], ()):
            if k == t:
                votes[""] += 1
            elif k.endswith("." + t):
                votes[k[: len(k) - len(t)]] += 1
    if not votes:
        return ""
    best = max(votes.values())
    return min((p for p, n in votes.items() if n == best), key=len)
