"""Online health probes: kNN and linear-probe accuracy of the backbone's embeddings.

Run on rank 0 every ``eval_every`` steps on a small labelled set: embeddings of a train and a
test part, cosine 20-NN majority vote and an L2-regularised logistic regression (scikit-learn).
By default the synthetic classification world (first half trains, second half tests); with
:func:`dataset_probe` a real classification dataset (its ``train`` split fits, ``val`` scores;
``test`` is never touched), each image resampled to the pool's mpp and centre-cropped. A
collapsing or stalled pretraining shows up as accuracy near chance; a flat curve says more
pretraining would not change the probe.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from rckd.engine.distributed import is_main

__all__ = ["HealthProbe", "knn_accuracy", "linear_probe_accuracy", "dataset_probe", "centre_view"]

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

    ``dataset`` is labelled (``"image"`` uint8 of one size, ``"label"``); the first half trains,
    the second tests, unless ``test`` is given (then ``dataset`` trains and ``test`` tests).
    Images are read once and kept.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 64, test: Dataset | None = None) -> None:
        parts = [dataset] if test is None else [dataset, test]
        samples = [d[i] for d in parts for i in range(len(d))]
        self.images = torch.stack([s["image"] for s in samples])
        self.labels = np.array([int(s["label"]) for s in samples])
        self.split = len(dataset) if test is not None else len(samples) // 2
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
        tr, te = slice(0, self.split), slice(self.split, None)
        y = self.labels
        res = {"probe/knn": knn_accuracy(x[tr], y[tr], x[te], y[te]),
               "probe/linear": linear_probe_accuracy(x[tr], y[tr], x[te], y[te])}
        log.info("step %d: kNN %.3f, linear %.3f", step, res["probe/knn"], res["probe/linear"])
        return res


def centre_view(image: torch.Tensor, scale: float, size: int) -> torch.Tensor:
    """A uint8 (3, H, W) image resized by ``scale`` (antialiased), then centre-cropped or
    zero-padded to ``size`` x ``size``."""
    import torch.nn.functional as F

    if abs(scale - 1.0) > 1e-3:
        h, w = image.shape[-2:]
        hw = (max(1, round(h * scale)), max(1, round(w * scale)))
        image = F.interpolate(image[None].float(), size=hw, mode="bilinear", antialias=True,
                              align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    image = image[:, top:top + size, left:left + size]
    out = torch.zeros(3, size, size, dtype=torch.uint8)
    out[:, :image.shape[1], :image.shape[2]] = image
    return out


class _CentreViews(Dataset):
    def __init__(self, dataset, mpp: float, size: int) -> None:
        self.dataset, self.size = dataset, size
        self.scale = float(dataset.mpp) / mpp if mpp > 0 else 1.0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        s = self.dataset[i]
        return {"image": centre_view(s["image"], self.scale, self.size), "label": s["label"]}


def dataset_probe(name: str, root: str, mpp: float, size: int, batch_size: int = 64,
                  options: dict | None = None) -> HealthProbe:
    """A probe on a registered classification dataset: ``train`` fits, ``val`` scores.

    Images are resampled from the dataset's mpp to ``mpp`` (the pool's) and centre-cropped to
    ``size`` pixels; the test split is never read.
    """
    from rckd.data.datasets import dataset_task, get_dataset

    if dataset_task(name) != "classification":
        raise ValueError(f"probe_dataset: {name!r} is not a classification dataset")
    train, val = (_CentreViews(get_dataset(name, root, s, **(options or {})), mpp, size)
                  for s in ("train", "val"))
    return HealthProbe(train, batch_size=batch_size, test=val)
