"""MoCo v2 (Chen et al. 2020) on the student backbone.

Query encoder = backbone + 2-layer MLP head (hidden = the backbone's embedding size, output
``dim``); key encoder = its momentum copy; negatives from a queue of past keys (gathered from
every rank); InfoNCE at temperature ``T``. The loss is symmetrised (each view is query once), as
in most reimplementations and MoCo v3. Shuffle-BN is not implemented: in one process, batch
statistics are shared by queries and keys of the same batch (documented limitation).
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import Tensor, nn

from rckd.config import Config, option
from rckd.data.augment import ViewAugment
from rckd.losses import gather, info_nce
from rckd.pretrain.base import PretrainTask, mlp

__all__ = ["MoCoTask", "MoCoOptions"]


@dataclasses.dataclass
class MoCoOptions(Config):
    """MoCo v2 options (``moco.<option>``)."""

    dim: int = option(128, ge=1, help="output dimension of the projection head")
    queue: int = option(4096, ge=1, help="length of the queue of negative keys")
    momentum: float = option(0.99, ge=0, le=1, help="key-encoder momentum")
    temperature: float = option(0.2, gt=0, help="InfoNCE temperature")


class MoCoTask(PretrainTask):
    """MoCo v2 with a momentum key encoder and a queue of negatives."""

    name = "moco"

    def __init__(self, backbone: nn.Module, size: int, dim: int = 128, queue: int = 4096,
                 momentum: float = 0.99, temperature: float = 0.2, augment: bool = True) -> None:
        super().__init__(backbone)
        f = backbone.num_features
        self.head = mlp([f, f, dim])
        self.key_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("queue", nn.functional.normalize(torch.randn(queue, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.momentum, self.temperature = momentum, temperature
        self.views = ViewAugment(size, blur_p=0.5) if augment else None
        self._pending: list[Tensor] = []

    @classmethod
    def build(cls, backbone: nn.Module, cfg, mpp: float) -> "MoCoTask":
        o = cfg.moco
        return cls(backbone, cfg.image_size, o.dim, o.queue, o.momentum, o.temperature, cfg.augment)

    def compile_targets(self) -> list[nn.Module]:
        return [self.backbone, self.key_backbone]

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x = self.images(batch)
        with torch.no_grad():
            v1, v2 = (self.views(x), self.views(x)) if self.views is not None else (x, x.flip(-1))
            views = self.prepare(torch.cat([v1, v2]))
            k = self.key_head(self.key_backbone(views)).float()
        q = self.head(self.backbone(views)).float()
        q1, q2 = q.chunk(2)
        k1, k2 = k.chunk(2)
        loss = 0.5 * (info_nce(q1, k2, self.queue, self.temperature)
                      + info_nce(q2, k1, self.queue, self.temperature))
        self._pending.append(nn.functional.normalize(k1, dim=1))
        with torch.no_grad():
            acc = ((q1 @ k2.T).argmax(1) == torch.arange(len(q1), device=q1.device)).float().mean()
        self._last = (v1[:4].detach(), v2[:4].detach())
        return loss, {"batch_top1": acc}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Momentum update of the key encoder, then enqueue this step's keys (all ranks)."""
        m = self.momentum
        for kmod, qmod in ((self.key_backbone, self.backbone), (self.key_head, self.head)):
            for pk, pq in zip(kmod.parameters(), qmod.parameters()):
                pk.mul_(m).add_(pq.detach(), alpha=1 - m)
            for bk, bq in zip(kmod.buffers(), qmod.buffers()):
                bk.copy_(bq)
        keys = gather(torch.cat(self._pending)) if self._pending else None
        self._pending = []
        if keys is None:
            return
        n, size = len(keys), len(self.queue)
        keys = keys[-size:]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(len(keys), device=keys.device) + ptr) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def panels(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"moco/view1": self._last[0], "moco/view2": self._last[1]}
