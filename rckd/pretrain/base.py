"""What every pretraining method shares: a backbone, on-device input preparation, export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from rckd.data.augment import normalize, to_float
from rckd.engine import Task

if TYPE_CHECKING:  # pragma: no cover
    from rckd.pretrain.run import PretrainConfig

__all__ = ["PretrainTask", "mlp"]


def mlp(dims: list[int], last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks over ``dims`` with a plain final Linear (optionally a final BN)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=last and not last_bn))
        if not last:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(b, affine=False))
    return nn.Sequential(*layers)


class PretrainTask(Task):
    """A :class:`rckd.engine.Task` around a student ``backbone`` (a :class:`Backbone`).

    Each method subclasses this in its own module, next to a dataclass of its own options, and
    implements :meth:`build`. ``prepare(x)`` turns augmented float images in [0, 1] into the
    backbone's normalised input (channels_last when the backbone's conv weights are).
    ``export(path, meta)`` writes the backbone alone, in timm's key layout, through
    :func:`rckd.weightfile.save_weights`.
    """

    name = "pretrain"

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @classmethod
    def build(cls, backbone: nn.Module, cfg: "PretrainConfig", mpp: float) -> "PretrainTask":
        """The task for a fresh ``backbone`` from the shared options of ``cfg`` and its own section
        (``getattr(cfg, cls.name)``); ``mpp`` is the pool's resolution."""
        raise NotImplementedError

    def prepare(self, x: Tensor) -> Tensor:
        """Normalise float images in [0, 1] for the backbone, in its conv weights' memory format."""
        w = next((p for p in self.backbone.parameters() if p.ndim == 4 and p.shape[-1] > 1), None)
        cl = w is not None and not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last)
        return normalize(x, self.backbone.mean, self.backbone.std, channels_last=cl)

    @staticmethod
    def images(batch: dict[str, Tensor]) -> Tensor:
        return to_float(batch["image"])

    def embed(self, images: Tensor) -> Tensor:
        """Pooled embeddings of uint8/float images in [0, 1] (no augmentation)."""
        return self.backbone(self.prepare(to_float(images)))

    def export(self, path: str | Path, meta: dict[str, Any]) -> Path:
        from rckd.weightfile import save_weights

        b = self.backbone
        return save_weights(b, path, {"arch": b.name, "mean": list(b.mean), "std": list(b.std),
                                      "kind": "backbone", **meta})
