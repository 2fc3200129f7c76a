"""A tiny task and dataset for engine tests (imported by the engine tests)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rckd.engine import Task


class ToyDataset(torch.utils.data.Dataset):
    """uint8 images whose target is their (scaled) grey level map."""

    def __init__(self, n: int = 64, size: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.mpp = 0.5

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i]}


class ToyTask(Task):
    """Regress 1 - mean(rgb) per pixel, with input noise so the RNG matters; NaN loss from call
    ``nan_at``, or a finite loss with NaN gradients from call ``nan_grad_at``."""

    def __init__(self, nan_at: int | None = None, crash_at: int | None = None, noise: float = 0.05,
                 nan_grad_at: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 1, 1))
        self.nan_at, self.crash_at, self.noise, self.calls = nan_at, crash_at, noise, 0
        self.nan_grad_at = nan_grad_at

    def forward(self, batch):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise KeyboardInterrupt("simulated interruption")
        x = batch["image"].float() / 255
        target = 1 - x.mean(1, keepdim=True)
        pred = self.net(x + self.noise * torch.randn_like(x))
        if self.nan_grad_at is not None and self.calls >= self.nan_grad_at:
            pred.register_hook(lambda g: g * float("nan"))
        loss = F.mse_loss(pred, target)
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return loss, {"mae": (pred - target).abs().mean().detach()}

    def panels(self, batch):
        return {"toy/input": batch["image"][:4].float() / 255}
