"""Online health probes: kNN and linear-probe accuracy of the backbone's embeddings.

Run on rank 0 every ``eval_every`` steps on a small labelled split (the synthetic classification
world by default): embeddings of a train and a test half, cosine 20-NN majority vote and an
L2-regularised logistic regression (scikit-learn). A collapsing or stalled pretraining shows up
as accuracy near chance.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from rckd.engine.distributed import is_main

__all__ = ["HealthProbe", "knn_accuracy", "linear_probe_accuracy"]

log = logging.getLogger(__name__)


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 20) -> float:
    """Cosine k-NN (majority vote, ties to the nearest) accuracy."""
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True).clip(1e-12)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True).clip(1e-12)
    k = min(k, len(a))
    nn_idx = np.argsort(-(b @ a.T), axis=1)[:, :k]
    votes = train_y[nn_idx]
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    counts = np.stack([(votes == c).sum(1) for c in range(n_classes)], axis=1).astype(float)
    counts[np.arange(len(votes)), votes[:, 0]] += 0.5  # nearest neighbour breaks ties
    return float((counts.argmax(1) == test_y).mean())


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray) -> float:
    """Standardised features, logistic regression (C=1), test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


class HealthProbe:
    """Callable ``(task, step) -> {"probe/knn": ..., "probe/linear": ...}`` for :func:`rckd.engine.fit`.

    ``dataset`` is labelled (``"image"`` uint8, ``"label"``); the first half trains, the second
    tests. Images are read once and kept.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 64) -> None:
        samples = [dataset[i] for i in range(len(dataset))]
        self.images = torch.stack([s["image"] for s in samples])
        self.labels = np.array([int(s["label"]) for s in samples])
        self.batch_size = batch_size

    @torch.no_grad()
    def features(self, task) -> np.ndarray:
        was_training = task.training
        task.eval()
        device = next(task.parameters()).device
        try:
            out = [task.embed(self.images[i:i + self.batch_size].to(device)).float().cpu()
                   for i in range(0, len(self.images), self.batch_size)]
        finally:
            task.train(was_training)
        return torch.cat(out).numpy()

    def __call__(self, task, step: int) -> dict[str, float]:
        if not is_main():
            return {}
        x = self.features(task)
        half = len(x) // 2
        tr, te = slice(0, half), slice(half, None)
        y = self.labels
        res = {"probe/knn": knn_accuracy(x[tr], y[tr], x[te], y[te]),
               "probe/linear": linear_probe_accuracy(x[tr], y[tr], x[te], y[te])}
        log.info("step %d: kNN %.3f, linear %.3f", step, res["probe/knn"], res["probe/linear"])
        return res
