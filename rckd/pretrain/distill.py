"""RCKD: the student (backbone + dense decoder) learns the frozen teacher's per-pixel response.

Targets come from the teacher on the fly (no gradient, on the un-augmented tile, at the pool's
mpp) or from a cached response in ``batch["target"]`` (uint8 0-255 or float in [0, 1]). The
geometric augmentation is applied to tile and target together; stain/colour jitter only to the
student's input. Loss: soft BCE (assumed default) or KL with a temperature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rckd.data.augment import PairedAugment
from rckd.losses import kl_distill, soft_bce
from rckd.pretrain.base import PretrainTask

__all__ = ["RCKDTask"]


class RCKDTask(PretrainTask):
    """Response-based cross-task distillation of a nuclei teacher into a student backbone.

    Args:
        backbone: the student backbone.
        decoder: maps the backbone pyramid to ``(B, 1, H, W)`` logits.
        teacher: a :class:`rckd.models.teachers.Teacher` (kept out of the state dict) or None
            when every batch carries a cached ``"target"``.
        mpp: microns per pixel of the pool's tiles (the teacher resamples to its own).
        augment: a :class:`PairedAugment` (None: no augmentation).
        loss: ``"bce"`` or ``"kl"``; ``temperature`` for KL.
    """

    name = "rckd"
    find_unused_parameters = True  # the backbone's pooling head (e.g. a final norm) is not used

    def __init__(self, backbone: nn.Module, decoder: nn.Module, teacher: nn.Module | None, mpp: float,
                 augment: PairedAugment | None = None, loss: str = "bce", temperature: float = 1.0) -> None:
        super().__init__(backbone)
        if loss not in ("bce", "kl"):
            raise ValueError(f"unknown distillation loss {loss!r} (use 'bce' or 'kl')")
        self.decoder, self.augment = decoder, augment
        self._teacher = [teacher] if teacher is not None else []  # not a submodule: never saved
        self.mpp, self.loss_name, self.temperature = float(mpp), loss, float(temperature)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def setup(self, device: torch.device) -> None:
        if self.teacher is not None:
            self.teacher.to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def targets(self, batch: dict[str, Tensor], images: Tensor) -> Tensor:
        """The teacher response (B, 1, H, W) in [0, 1] for un-augmented float images."""
        if "target" in batch:
            t = batch["target"]
            t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
            return t.unsqueeze(1) if t.ndim == 3 else t
        if self.teacher is None:
            raise ValueError("RCKD needs a teacher or cached responses (batch has no 'target')")
        return self.teacher.response(images, self.mpp).float()

    def predict(self, images: Tensor) -> Tensor:
        """Student logits (B, 1, H, W) for float images in [0, 1]."""
        x = self.prepare(images)
        return self.decoder(self.backbone.forward_pyramid(x), size=tuple(images.shape[-2:]))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        images = self.images(batch)
        target = self.targets(batch, images)
        if self.augment is not None:
            with torch.no_grad():
                images, target = self.augment(images, target)
        logits = self.predict(images)
        if self.loss_name == "bce":
            loss = soft_bce(logits, target)
        else:
            loss = kl_distill(logits, target, self.temperature)
        with torch.no_grad():
            mae = (torch.sigmoid(logits.float()) - target).abs().mean()
        self._last = (images[:4].detach(), target[:4].detach(), logits[:4].detach())
        return loss, {"response_mae": mae}

    def panels(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        images, target, logits = self._last
        return {"rckd/input": images, "rckd/teacher": target, "rckd/student": torch.sigmoid(logits.float())}
