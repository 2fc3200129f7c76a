"""Weight files: safetensors beside a JSON sidecar, checksummed, never pickled.

``save_weights(obj, "runs/x/backbone", meta)`` writes ``runs/x/backbone.safetensors`` and
``runs/x/backbone.json`` (``meta`` plus ``sha256``, ``format``, ``num_tensors``), each atomically,
the JSON last so that a present JSON means a finished checkpoint. ``load_weights`` verifies the
checksum. ``read_state_dict`` also reads foreign timm-format files (``.safetensors`` without a
sidecar, or ``.pth``/``.pt``/``.bin`` through ``torch.load(weights_only=True)``).

A module with an ``export_state_dict()`` method (:class:`rckd.models.backbones.Backbone`) is saved
in the form that method returns, i.e. timm's own key layout, so that
``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=...))`` loads it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from collections import Counter
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from rckd.io import atomic_path, read_json, sha256_file, write_json

__all__ = ["save_weights", "load_weights", "read_state_dict", "weights_paths", "detect_prefix", "FORMAT",
           "WEIGHTS_DIR", "verify_pinned", "to_half"]

log = logging.getLogger(__name__)

FORMAT = "rckd-weights-v1"
#: the weight files shipped inside the package (teacher, pretrained students)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")


def weights_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """Return ``(<stem>.safetensors, <stem>.json)`` for a stem or either file's path."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _to_state_dict(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        export = getattr(obj, "export_state_dict", None)
        obj = export() if callable(export) else obj.state_dict()
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        # clone: safetensors refuses tensors that share storage (tied weights, views)
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def save_weights(obj: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                 meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json`` (meta + sha256) atomically.

    Args:
        obj: a module (its ``export_state_dict()`` if it has one, else ``state_dict()``) or a
            mapping of tensors.
        path: the file stem; a ``.safetensors`` or ``.json`` suffix is stripped.
        meta: JSON-able facts to keep beside the weights (architecture, config, mpp, mean/std,
            step...). Non-JSON values are written with ``str``.

    Returns:
        The path of the ``.safetensors`` file.
    """
    from safetensors.torch import save_file

    st_path, json_path = weights_paths(path)
    tensors = _to_state_dict(obj)
    meta = dict(meta or {})
    header = {"format": FORMAT, "meta": json.dumps(meta, default=str)}
    with atomic_path(st_path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    sidecar = {**meta, "format": FORMAT, "num_tensors": len(tensors),
               "num_params": int(sum(t.numel() for t in tensors.values())),
               "file": st_path.name, "sha256": sha256_file(st_path)}
    write_json(json_path, sidecar)
    log.info("wrote %s (%d tensors)", st_path, len(tensors))
    return st_path


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu"
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_weights`, verifying its sha256.

    Raises:
        FileNotFoundError: the ``.safetensors`` file or its ``.json`` sidecar is missing.
        ValueError: the checksum does not match.
    """
    from safetensors.torch import load_file

    st_path, json_path = weights_paths(path)
    for p in (st_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: weights file not found")
    meta = read_json(json_path)
    expected = meta.get("sha256")
    actual = sha256_file(st_path)
    if expected != actual:
        raise ValueError(f"{st_path}: sha256 {actual[:12]}... does not match {json_path.name} "
                         f"({str(expected)[:12]}...): file corrupt or replaced")
    return load_file(str(st_path), device=str(device)), meta


def verify_pinned(path: str | os.PathLike, sha256: str, sidecar_sha256: str, what: str) -> Path:
    """Check a shipped weight file and its JSON sidecar against checksums pinned in the code.

    Returns the ``.safetensors`` path. Raises ``FileNotFoundError`` (missing file) or
    ``ValueError`` (either checksum differs: the file was replaced or the sidecar edited).
    """
    st_path, json_path = weights_paths(path)
    for p, pinned in ((st_path, sha256), (json_path, sidecar_sha256)):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: file of {what} not found (reinstall rckd)")
        actual = sha256_file(p)
        if actual != pinned:
            raise ValueError(f"{p}: sha256 {actual[:16]}... does not match the pinned {pinned[:16]}... "
                             f"of {what} (file corrupt, replaced or edited)")
    return st_path


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
        return load_file(str(path), device=str(device)), {}
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
