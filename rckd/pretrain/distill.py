"""RCKD: the student (backbone + dense decoder) learns the frozen teacher's per-pixel response.

Targets come from the teacher on the fly (no gradient, on the un-augmented tile, at the pool's
mpp) or from a cached response in ``batch["target"]`` (uint8 0-255 or float in [0, 1]). The
geometric augmentation is applied to tile and target together; stain/colour jitter only to the
student's input. Loss: soft BCE (assumed default) or KL with a temperature.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from rckd.config import Config, option
from rckd.data.augment import PairedAugment
from rckd.losses import kl_distill, soft_bce
from rckd.models.teachers.base import TTA_VIEWS
from rckd.pretrain.base import PretrainTask

__all__ = ["RCKDTask", "RCKDOptions"]


@dataclasses.dataclass
class RCKDOptions(Config):
    """RCKD options (``rckd.<option>``): the teacher, its targets, the loss and the augmentation."""

    teacher: str = option("default", help="nuclei teacher (registry name or checkpoint path)")
    tta: int | None = option(None, choices=TTA_VIEWS,
                             help="teacher test-time dihedral views (none: the teacher's own)")
    cache: str | None = option(None, help="h5 response cache from 'rckd teacher predict' "
                                          "(none: the teacher runs on the fly)")
    precompute: bool = option(True, help="with an in-memory pool seen at least once: run the "
                                         "teacher once per tile up front, not every epoch")
    loss: str = option("bce", choices=("bce", "kl"), help="distillation loss (assumed: soft BCE)")
    temperature: float = option(1.0, gt=0, help="KL temperature (loss=kl)")
    decoder_width: int = option(64, ge=1, help="channels of the dense decoder")
    crop_scale: tuple[float, float] = option((0.5, 1.0), gt=0, le=1,
                                             help="random-resized-crop area range (min max)")
    hed_sigma: float = option(0.05, ge=0, help="HED stain jitter strength (0: none)")
    colour_jitter: float = option(0.1, ge=0, help="brightness/contrast/saturation jitter")

    def validate(self) -> None:
        if self.crop_scale[0] > self.crop_scale[1]:
            raise ValueError(f"crop_scale: the minimum {self.crop_scale[0]} exceeds the maximum "
                             f"{self.crop_scale[1]}")


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

    @classmethod
    def build(cls, backbone: nn.Module, cfg, mpp: float) -> "RCKDTask":
        from rckd.models.decoders import DenseDecoder
        from rckd.models.teachers import get_teacher

        o, size = cfg.rckd, cfg.image_size
        teacher = None if o.cache else get_teacher(o.teacher, tta=o.tta)
        j = o.colour_jitter
        augment = (PairedAugment(size, tuple(o.crop_scale), hed_sigma=o.hed_sigma, hed_bias=o.hed_sigma,
                                 brightness=j, contrast=j, saturation=j, hue=j / 5) if cfg.augment else None)
        decoder = DenseDecoder(backbone.channels, backbone.strides, 1, width=o.decoder_width)
        return cls(backbone, decoder, teacher, mpp, augment, o.loss, o.temperature)

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
