"""Weight files: safetensors beside a JSON sidecar, checksummed, never pickled.

``save_weights(obj, "runs/x/backbone", meta)`` writes ``runs/x/backbone.safetensors`` and
``runs/x/backbone.json`` (``meta`` plus ``sha256``, ``format``, ``num_tensors``), each atomically,
the JSON last so that a present JSON means a finished checkpoint. ``load_weights`` verifies the
checksum. Used by the models (weights shipped and exported) and the engine (checkpoints) alike;
foreign formats (timm ``.pth``, bare ``.safetensors``) are read by
:func:`rckd.models.weights.read_state_dict`.

A module with an ``export_state_dict()`` method (:class:`rckd.models.backbones.Backbone`) is saved
in the form that method returns, i.e. timm's own key layout, so that
``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=...))`` loads it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from rckd.io import atomic_path, read_json, sha256_file, write_json

__all__ = ["save_weights", "load_weights", "weights_paths", "FORMAT"]

log = logging.getLogger(__name__)

FORMAT = "rckd-weights-v1"


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
