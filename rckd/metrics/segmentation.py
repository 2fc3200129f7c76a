"""Semantic segmentation metrics from a pixel confusion matrix: IoU, mIoU, Dice.

Accumulate a :class:`SegmentationMeter` over batches (predicted and true class maps), then read
``compute()``. Conventions: class 0 is background; ``miou`` averages every class, ``miou_fg``
leaves class 0 out; ``dice`` is the mean foreground Dice (binary tasks: the gland Dice). A class
absent from both truth and prediction over the whole split is left out of the means. Pixels whose
true label equals ``ignore_index`` are skipped.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SegmentationMeter", "iou_per_class", "dice_per_class", "segmentation_metrics"]


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU per class (NaN where the class is absent from truth and prediction)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def dice_per_class(cm: np.ndarray) -> np.ndarray:
    """Dice per class, 2TP / (2TP + FP + FN) (NaN where absent)."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def segmentation_metrics(cm: np.ndarray) -> dict:
    """mIoU with and without background, foreground Dice, pixel accuracy, per-class IoU."""
    iou, dice = iou_per_class(cm), dice_per_class(cm)
    total = cm.sum()
    return {"miou": _nanmean(iou), "miou_fg": _nanmean(iou[1:]), "dice": _nanmean(dice[1:]),
            "pixel_accuracy": float(np.trace(cm) / total) if total else float("nan"),
            "iou": [None if np.isnan(v) else float(v) for v in iou]}


class SegmentationMeter:
    """Accumulates a (C, C) pixel confusion matrix (row = truth, column = prediction)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.cm = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add a batch of predicted and true class maps (same shape, integer)."""
        p = torch.as_tensor(pred).reshape(-1).long()
        t = torch.as_tensor(target).reshape(-1).long().to(p.device)
        if p.shape != t.shape:
            raise ValueError(f"prediction has {p.numel()} pixels, target {t.numel()}")
        keep = (t >= 0) & (t < self.num_classes)
        if self.ignore_index is not None:
            keep &= t != self.ignore_index
        idx = t[keep] * self.num_classes + p[keep].clamp(0, self.num_classes - 1)
        counts = torch.bincount(idx, minlength=self.num_classes ** 2).cpu().numpy()
        self.cm += counts.reshape(self.num_classes, self.num_classes)

    def compute(self) -> dict:
        """The metrics of everything seen so far."""
        return segmentation_metrics(self.cm)
