"""Nuclei segmentation metrics: foreground Dice, AJI and PQ (numpy only).

- **Dice**: 2|P ∩ G| / (|P| + |G|) on the foreground (instance id > 0).
- **AJI** (aggregated Jaccard index, Kumar et al., IEEE TMI 2017): every ground-truth nucleus is
  matched to the predicted nucleus of highest IoU with it; AJI = Σ|G ∩ S| / (Σ|G ∪ S| + Σ|unused S|),
  where unused predictions count fully in the denominator (the common implementation, e.g.
  HoVer-Net's ``get_fast_aji``: a prediction may serve several ground-truth nuclei).
- **PQ** (panoptic quality, Kirillov et al. 2019): pairs with IoU > 0.5 are matches (unique);
  PQ = Σ IoU(matches) / (TP + FP/2 + FN/2) = DQ x SQ.

All functions take instance maps (H, W) of non-negative ints (0 = background); ids need not be
consecutive. Empty-vs-empty gives 1.0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dice", "aji", "panoptic_quality", "pq", "instance_scores", "overlaps"]


def _relabel(inst: np.ndarray) -> tuple[np.ndarray, int]:
    """Consecutive ids 1..n (0 stays background) and n."""
    inst = np.asarray(inst)
    ids, inverse = np.unique(inst, return_inverse=True)
    inverse = inverse.reshape(inst.shape)
    if ids.size and ids[0] == 0:
        return inverse.astype(np.int64), ids.size - 1
    return inverse.astype(np.int64) + 1, ids.size


def overlaps(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection matrix (n_gt, n_pred) and the areas of each ground-truth and predicted instance."""
    if np.shape(gt) != np.shape(pred):
        raise ValueError(f"shapes differ: ground truth {np.shape(gt)} vs prediction {np.shape(pred)}")
    g, ng = _relabel(gt)
    p, npred = _relabel(pred)
    joint = np.bincount((g * (npred + 1) + p).ravel(), minlength=(ng + 1) * (npred + 1))
    joint = joint.reshape(ng + 1, npred + 1)
    inter = joint[1:, 1:].astype(np.float64)
    return inter, joint[1:, :].sum(1).astype(np.float64), joint[:, 1:].sum(0).astype(np.float64)


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Foreground Dice of two label maps (any id > 0 is foreground)."""
    g, p = np.asarray(gt) > 0, np.asarray(pred) > 0
    denom = g.sum() + p.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(g, p).sum() / denom)


def aji(gt: np.ndarray, pred: np.ndarray) -> float:
    """Aggregated Jaccard index of two instance maps."""
    inter, area_g, area_p = overlaps(gt, pred)
    if inter.shape[0] == 0:
        return 1.0 if inter.shape[1] == 0 else 0.0
    if inter.shape[1] == 0:
        return 0.0
    union = area_g[:, None] + area_p[None, :] - inter
    iou = inter / union
    best = iou.argmax(1)
    rows = np.arange(inter.shape[0])
    matched = inter[rows, best] > 0
    c = inter[rows, best][matched].sum()
    u = union[rows, best][matched].sum() + area_g[~matched].sum()
    used = np.zeros(inter.shape[1], dtype=bool)
    used[best[matched]] = True
    u += area_p[~used].sum()
    return float(c / u) if u > 0 else 1.0


def panoptic_quality(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """PQ, SQ, DQ and the TP/FP/FN counts at IoU > 0.5."""
    inter, area_g, area_p = overlaps(gt, pred)
    ng, npred = inter.shape
    if ng == 0 and npred == 0:
        return {"pq": 1.0, "sq": 1.0, "dq": 1.0, "tp": 0, "fp": 0, "fn": 0}
    iou = inter / (area_g[:, None] + area_p[None, :] - inter) if ng and npred else np.zeros((ng, npred))
    match = iou > 0.5  # at most one per row and column: IoU > 0.5 is unique
    tp = int(match.sum())
    fp, fn = npred - tp, ng - tp
    sq = float(iou[match].sum() / tp) if tp else 0.0
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    return {"pq": sq * dq, "sq": sq, "dq": dq, "tp": tp, "fp": fp, "fn": fn}


def pq(gt: np.ndarray, pred: np.ndarray) -> float:
    """Panoptic quality of two instance maps."""
    return panoptic_quality(gt, pred)["pq"]


def instance_scores(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``dice``, ``aji``, ``pq``, ``sq``, ``dq`` and counts of one image."""
    out = {"dice": dice(gt, pred), "aji": aji(gt, pred)}
    out.update(panoptic_quality(gt, pred))
    out["n_gt"] = int(len(np.unique(gt[gt > 0])))
    out["n_pred"] = int(len(np.unique(pred[pred > 0])))
    return out
