"""Classification metrics from integer labels: accuracy, balanced accuracy, macro-F1, confusion.

Plain numpy. A class absent from both truth and prediction has no defined recall/F1 and is left
out of the macro means (so a split without some class is not penalised for it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["confusion_matrix", "accuracy", "balanced_accuracy", "macro_f1", "classification_metrics"]


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def accuracy(cm: np.ndarray) -> float:
    """Fraction correct."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in the truth."""
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present])) if present.any() else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over classes present in truth or prediction."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2TP + FP + FN
    present = denom > 0
    return float(np.mean(2 * tp[present] / denom[present])) if present.any() else float("nan")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """All of the above as a JSON-friendly dict (``confusion`` as nested lists)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return {"accuracy": accuracy(cm), "balanced_accuracy": balanced_accuracy(cm),
            "macro_f1": macro_f1(cm), "confusion": cm.tolist(), "n": int(cm.sum())}
