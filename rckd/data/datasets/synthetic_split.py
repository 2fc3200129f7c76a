"""Train / val / test splits of the synthetic world, so it plugs into the dataset registry.

Splits are disjoint tile-index ranges of one :class:`rckd.data.synthetic.SyntheticWorld`:
train starts at tile 5,000,000, val at 6,000,000 and test at 7,000,000, far from the low indices
an unlabeled pretraining pool draws from, so no downstream tile was seen in pretraining.
"""

from __future__ import annotations

__all__ = ["synthetic_split", "OFFSETS"]

OFFSETS = {"train": 5_000_000, "val": 6_000_000, "test": 7_000_000}


def synthetic_split(split: str = "train", task: str = "classification", n: int | None = None,
                    seed: int = 0, size: int = 64, mpp: float = 0.5, sizes: dict | None = None):
    """A ``SyntheticDataset`` for ``split`` (``n`` tiles; default from ``sizes`` or 64/32/32)."""
    from rckd.data.synthetic import SyntheticDataset

    if split not in OFFSETS:
        raise ValueError(f"synthetic: unknown split {split!r} (known: {', '.join(OFFSETS)})")
    counts = {"train": 64, "val": 32, "test": 32, **(sizes or {})}
    n = int(n if n is not None else counts[split])
    return SyntheticDataset(n, seed=seed, size=size, mpp=mpp, task=task, offset=OFFSETS[split])
