"""Barlow Twins (Zbontar et al. 2021) on the student backbone.

Projector: three Linear layers (BN + ReLU between) of width ``proj_dim``, by default 4x the
backbone's embedding (the paper's 8192 for ResNet-50's 2048, scaled to each backbone). Views as
in the paper (asymmetric blur/solarisation) plus HED stain jitter.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from rckd.config import Config, option
from rckd.data.augment import ViewAugment
from rckd.losses import barlow_twins_loss
from rckd.pretrain.base import PretrainTask, mlp

__all__ = ["BarlowTask", "BarlowOptions"]


@dataclasses.dataclass
class BarlowOptions(Config):
    """Barlow Twins options (``barlow.<option>``)."""

    proj_dim: int | None = option(None, ge=1, help="projector width (none: 4x the embedding)")
    lambd: float = option(0.0051, gt=0, help="weight of the off-diagonal terms")


class BarlowTask(PretrainTask):
    """Barlow Twins: decorrelate the cross-correlation of two views' projections."""

    name = "barlow"

    def __init__(self, backbone: nn.Module, size: int, proj_dim: int | None = None, lambd: float = 0.0051,
                 augment: bool = True) -> None:
        super().__init__(backbone)
        d = proj_dim or 4 * backbone.num_features
        self.projector = mlp([backbone.num_features, d, d, d])
        self.lambd = lambd
        self.view1 = ViewAugment(size, blur_p=1.0, solarize_p=0.0) if augment else None
        self.view2 = ViewAugment(size, blur_p=0.1, solarize_p=0.2) if augment else None

    @classmethod
    def build(cls, backbone: nn.Module, cfg, mpp: float) -> "BarlowTask":
        return cls(backbone, cfg.image_size, cfg.barlow.proj_dim, cfg.barlow.lambd, cfg.augment)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x = self.images(batch)
        with torch.no_grad():
            v1, v2 = (self.view1(x), self.view2(x)) if self.view1 is not None else (x, x.flip(-1))
        z = self.projector(self.backbone(self.prepare(torch.cat([v1, v2]))))
        z1, z2 = z.float().chunk(2)
        self._last = (v1[:4].detach(), v2[:4].detach())
        return barlow_twins_loss(z1, z2, self.lambd), {}

    def panels(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"barlow/view1": self._last[0], "barlow/view2": self._last[1]}
