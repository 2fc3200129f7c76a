"""Supervised ImageNet init: timm-format weights from a local file, exported as our checkpoint.

No training happens: the file (``.safetensors``, ``.pth``/``.bin`` read with
``weights_only=True``, or an rckd checkpoint) is loaded into the backbone (classifier dropped,
keys matched by :func:`rckd.models.backbones.create_backbone`) and written back in the same
backbone-only format the other methods produce, so fine-tuning treats every init alike.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rckd.config import Config, option

__all__ = ["imagenet_init", "ImageNetOptions"]


@dataclasses.dataclass
class ImageNetOptions(Config):
    """Supervised ImageNet init options (``imagenet.<option>``)."""

    weights: str | None = option(None, help="local timm-format ImageNet weight file (required)")


def imagenet_init(backbone_name: str, weights: str | Path | None, out: str | Path, meta: dict) -> Path:
    """Load ``weights`` into ``backbone_name`` and export it to ``<out>/backbone``."""
    from rckd.models.backbones import create_backbone
    from rckd.pretrain.base import PretrainTask

    if not weights:
        raise ValueError("method=imagenet needs imagenet.weights=<local timm weight file> "
                         "(no downloads happen here)")
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"{path}: ImageNet weight file not found")
    backbone = create_backbone(backbone_name, weights=path)
    return PretrainTask(backbone).export(Path(out) / "backbone",
                                         {**meta, "method": "imagenet", "source": str(path), "step": 0})
