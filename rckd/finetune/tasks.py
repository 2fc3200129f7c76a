"""Fine-tuning Tasks for the engine's one loop, and tiled prediction for evaluation.

:class:`ClassificationTask`: backbone -> GAP -> dropout -> FC, cross-entropy; ``linear=True``
freezes the backbone (kept in eval mode, so BatchNorm statistics stay those of the init) and
trains the head only (linear probe), by default behind a BatchNorm without affine parameters, as
in MAE's linear probe: embeddings of different pretraining methods differ in scale by orders of
magnitude, and a head trained for a few hundred steps should not depend on that. :class:`SegmentationTask`: backbone pyramid ->
:class:`~rckd.models.decoders.DenseDecoder` -> per-pixel cross-entropy (``IGNORE`` skipped).
Augmentation on the device: random horizontal/vertical flips and 90-degree rotations (applied
alike to image and mask), then normalisation with the backbone's mean/std.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rckd.engine import Task
from rckd.finetune.views import IGNORE, tile_origins
from rckd.models.decoders import DenseDecoder

__all__ = ["ClassificationTask", "SegmentationTask", "flip_rotate", "normalise",
           "predict_classification", "predict_segmentation", "embed"]


def normalise(images: Tensor, mean: Iterable[float], std: Iterable[float]) -> Tensor:
    """uint8 or [0, 1] float (B, 3, H, W) -> normalised float."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    m = torch.tensor(tuple(mean), device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(tuple(std), device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def flip_rotate(images: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """One random dihedral transform per batch (square inputs), applied alike to the masks."""
    k = int(torch.randint(4, (1,)))
    flip = bool(torch.randint(2, (1,)))
    def t(x: Tensor, dims: tuple[int, int]) -> Tensor:
        x = torch.rot90(x, k, dims) if x.shape[dims[0]] == x.shape[dims[1]] else x
        return torch.flip(x, (dims[1],)) if flip else x
    images = t(images, (-2, -1))
    return images, (t(masks, (-2, -1)) if masks is not None else None)


class ClassificationTask(Task):
    """Image classification by the pooled embedding and a linear head."""

    def __init__(self, backbone: nn.Module, num_classes: int, linear: bool = False,
                 drop_rate: float = 0.0, augment: bool = True, linear_norm: bool = True) -> None:
        super().__init__()
        self.backbone, self.linear, self.augment = backbone, linear, augment
        self.norm = nn.BatchNorm1d(backbone.num_features, affine=False) if linear and linear_norm else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(backbone.num_features, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        if linear:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "ClassificationTask":
        super().train(mode)
        if self.linear:
            self.backbone.eval()
        return self

    def logits(self, images: Tensor) -> Tensor:
        """Class logits of uint8 images (no augmentation)."""
        x = normalise(images, self.backbone.mean, self.backbone.std)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.linear):
            feats = self.backbone(x)
        return self.head(self.drop(self.norm(feats.float())))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        images = flip_rotate(batch["image"])[0] if self.augment else batch["image"]
        logits = self.logits(images)
        loss = F.cross_entropy(logits.float(), batch["label"])
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        return loss, {"acc": acc.detach()}


class SegmentationTask(Task):
    """Semantic segmentation by the dense decoder on the backbone's pyramid."""

    def __init__(self, backbone: nn.Module, num_classes: int, width: int = 64,
                 augment: bool = True) -> None:
        super().__init__()
        self.backbone, self.augment = backbone, augment
        self.decoder = DenseDecoder(backbone.channels, backbone.strides, num_classes, width=width)

    def logits(self, images: Tensor) -> Tensor:
        """Per-pixel logits (B, C, H, W) of uint8 images."""
        x = normalise(images, self.backbone.mean, self.backbone.std)
        return self.decoder(self.backbone.forward_pyramid(x), size=tuple(x.shape[-2:]))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        images, masks = batch["image"], batch["mask"]
        if self.augment:
            images, masks = flip_rotate(images, masks)
        logits = self.logits(images)
        loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE)
        valid = masks != IGNORE
        acc = ((logits.argmax(1) == masks) & valid).sum() / valid.sum().clamp(min=1)
        return loss, {"pixel_acc": acc.detach()}


def _tiles(image: Tensor, size: int) -> tuple[Tensor, list[tuple[int, int]], tuple[int, int]]:
    """Pad ``image`` (3, H, W) to at least ``size`` and cut it into a covering grid of tiles."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (0, max(0, size - w), 0, max(0, size - h)))
    ys, xs = tile_origins(max(h, size), size), tile_origins(max(w, size), size)
    origins = [(y, x) for y in ys for x in xs]
    return torch.stack([padded[:, y:y + size, x:x + size] for y, x in origins]), origins, (h, w)


def _batched(fn, tiles: Tensor, batch_size: int) -> Tensor:
    return torch.cat([fn(tiles[i:i + batch_size]) for i in range(0, len(tiles), batch_size)])


@torch.no_grad()
def predict_classification(task: ClassificationTask, images: list[Tensor], size: int,
                           device: torch.device, batch_size: int = 64) -> Tensor:
    """Class probabilities (N, C): the softmax averaged over each image's tiles."""
    return _mean_over_tiles(lambda t: task.logits(t).float().softmax(1), images, size, device,
                            batch_size)


def _mean_over_tiles(fn, images: list[Tensor], size: int, device: torch.device,
                     batch_size: int) -> Tensor:
    """``fn`` over every tile of every image, in batches, averaged per image: (N, ...)."""
    cuts = [_tiles(im, size) for im in images]
    tiles = torch.cat([c[0] for c in cuts]).to(device)
    values = _batched(fn, tiles, batch_size).cpu()
    out, i = [], 0
    for c in cuts:
        out.append(values[i:i + len(c[1])].mean(0))
        i += len(c[1])
    return torch.stack(out)


@torch.no_grad()
def embed(backbone: nn.Module, images: list[Tensor], size: int, device: torch.device,
          batch_size: int = 64) -> Tensor:
    """Pooled embeddings (N, D), averaged over each image's tiles."""
    return _mean_over_tiles(lambda t: backbone(normalise(t, backbone.mean, backbone.std)).float(),
                            images, size, device, batch_size)


@torch.no_grad()
def predict_segmentation(task: SegmentationTask, image: Tensor, size: int, out_size: tuple[int, int],
                         device: torch.device, batch_size: int = 16) -> Tensor:
    """Class map (H, W) at ``out_size``: tile logits stitched (overlaps averaged) and resized."""
    tiles, origins, (h, w) = _tiles(image, size)
    logits = _batched(lambda t: task.logits(t).float(), tiles.to(device), batch_size).cpu()
    c = logits.shape[1]
    ph, pw = max(h, size), max(w, size)
    acc = torch.zeros(c, ph, pw)
    cnt = torch.zeros(1, ph, pw)
    for (y, x), lg in zip(origins, logits):
        acc[:, y:y + size, x:x + size] += lg
        cnt[:, y:y + size, x:x + size] += 1
    full = (acc / cnt)[:, :h, :w]
    if (h, w) != tuple(out_size):
        full = F.interpolate(full[None], size=tuple(out_size), mode="bilinear", align_corners=False)[0]
    return full.argmax(0)
