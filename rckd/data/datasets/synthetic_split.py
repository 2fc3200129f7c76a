"""Train / val / test splits of the synthetic world, so it plugs into the dataset registry.

Splits are disjoint index ranges of one :class:`rckd.data.synthetic.SyntheticDataset` family: the
test set is drawn with ``seed + 1_000_003`` and val with ``seed + 2_000_003``, so no tile repeats.
"""

from __future__ import annotations

__all__ = ["synthetic_split"]

_OFFSETS = {"train": 0, "test": 1_000_003, "val": 2_000_003}


def synthetic_split(split: str = "train", task: str = "classification", n: int | None = None,
                    seed: int = 0, size: int = 64, mpp: float = 0.5,
                    sizes: dict | None = None):
    """A ``SyntheticDataset`` for ``split`` (``n`` tiles; default from ``sizes`` or 64/32/32)."""
    from rckd.data.synthetic import SyntheticDataset

    if split not in _OFFSETS:
        raise ValueError(f"synthetic: unknown split {split!r} (known: {', '.join(_OFFSETS)})")
    counts = {"train": 64, "val": 32, "test": 32, **(sizes or {})}
    n = int(n if n is not None else counts[split])
    ds = SyntheticDataset(n, seed=seed + _OFFSETS[split], size=size, mpp=mpp, task=task)
    if not hasattr(ds, "task"):
        try:
            ds.task = "segmentation" if task == "segmentation" else "classification"
        except AttributeError:
            pass
    return ds
