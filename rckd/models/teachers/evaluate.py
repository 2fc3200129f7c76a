"""``rckd teacher eval``: Dice, AJI and PQ of a teacher on a MoNuSeg-layout root.

Every image is run through ``Teacher.instances`` at its native mpp (the teacher resamples to its
own and maps back), and compared with the ground-truth instances (stored instance masks where
present, else the rasterised XML). Scores are per image and their means; the JSON file has the
keys ``dice``, ``aji``, ``pq`` (means) plus ``sq``, ``dq``, ``per_image``, ``teacher``, ``images``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from rckd.config import option
from rckd.io import write_json
from rckd.metrics.instance import instance_scores

__all__ = ["TeacherEvalConfig", "evaluate_teacher", "score_teacher"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TeacherEvalConfig:
    """Dice, AJI and PQ of a nuclei teacher on a MoNuSeg-layout root."""

    teacher: str = option("default", help="teacher name ('default', 'classical', ...) or checkpoint path")
    data: str = option("../shared/data/monuseg/train", help="MoNuSeg-layout root")
    images: list[str] = option(default_factory=list, help="image ids to evaluate (default: all)")
    holdout: bool = option(False, help="evaluate on the shipped teacher's held-out images only")
    source: str = option("auto", help="ground truth: 'auto', 'masks' or 'xml'", choices=("auto", "masks", "xml"))
    json: str = option("", help="write the scores to this JSON file")
    device: str = option("cpu", help="'cpu', 'cuda' or 'auto'")


def score_teacher(teacher, dataset, names_log: bool = True) -> dict:
    """Per-image and mean scores of ``teacher`` on a :class:`~rckd.data.datasets.monuseg.MoNuSeg`."""
    per_image = {}
    for i in range(len(dataset)):
        sample = dataset[i]
        pred = teacher.instances(sample["image"][None], dataset.mpp)[0]
        scores = instance_scores(sample["nuclei"].numpy(), pred)
        per_image[dataset.names[i]] = scores
        if names_log:
            log.info("%s dice %.4f aji %.4f pq %.4f", dataset.names[i], scores["dice"], scores["aji"],
                     scores["pq"])
    keys = ("dice", "aji", "pq", "sq", "dq")
    means = {k: float(np.mean([s[k] for s in per_image.values()])) for k in keys}
    return {**means, "per_image": per_image}


def evaluate_teacher(cfg: TeacherEvalConfig) -> int:
    """CLI entry: score, print a one-line summary, write JSON if asked."""
    from rckd.data.datasets.monuseg import MoNuSeg
    from rckd.models.teachers.registry import get_teacher
    from rckd.models.teachers.training import MONUSEG_HOLDOUT
    from rckd.runtime import resolve_device

    names = list(cfg.images) or (list(MONUSEG_HOLDOUT) if cfg.holdout else None)
    dataset = MoNuSeg(cfg.data, names=names, source=cfg.source)
    teacher = get_teacher(cfg.teacher, device=resolve_device(cfg.device))
    t0 = time.time()
    result = score_teacher(teacher, dataset)
    result.update(teacher=cfg.teacher, teacher_info=teacher.describe(), data=str(cfg.data),
                  images=dataset.names, seconds=round(time.time() - t0, 1))
    if cfg.json:
        write_json(Path(cfg.json), result)
    print(f"{cfg.teacher}: dice {result['dice']:.4f}  aji {result['aji']:.4f}  pq {result['pq']:.4f}"
          f"  ({len(dataset)} images, {result['seconds']:.0f} s)")
    return 0
