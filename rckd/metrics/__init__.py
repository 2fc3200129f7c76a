"""Evaluation metrics (numpy/torch only).

- :mod:`rckd.metrics.instance`: nuclei instance segmentation: foreground Dice, AJI, PQ.
- :mod:`rckd.metrics.classification`, :mod:`rckd.metrics.segmentation`: downstream tasks.
"""

from rckd.metrics.instance import aji, dice, instance_scores, panoptic_quality, pq

__all__ = ["aji", "dice", "instance_scores", "panoptic_quality", "pq"]
