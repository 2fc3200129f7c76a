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

__all__ = ["TeacherEvalConfig", "evaluate_teacher", "score_teacher", "tune_postprocess", "POSTPROCESS_GRID"]

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
    tta: int = option(0, help="dihedral test-time views: 1, 2, 4 or 8 (0: the teacher's own setting)")


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


POSTPROCESS_GRID = {"fg_threshold": (0.5,), "marker_threshold": (0.4, 0.5, 0.6),
                    "boundary_weight": (1.0, 2.0, 3.0)}


def tune_postprocess(teacher, dataset, grid: dict | None = None) -> tuple[dict, list[dict]]:
    """Pick the watershed thresholds of a learned teacher that maximise mean AJI on ``dataset``.

    Use training images only (never the held-out ones). The maps are computed once per image;
    returns ``(best params, table of every setting with its mean dice/aji/pq)``.
    """
    import itertools

    from rckd.metrics.instance import aji, dice, pq
    from rckd.models.teachers.postprocess import instances_from_boundary

    grid = grid or POSTPROCESS_GRID
    cached = []
    for i in range(len(dataset)):
        s = dataset[i]
        cached.append((teacher.maps(s["image"][None], dataset.mpp)[0].cpu().numpy(), s["nuclei"].numpy()))
    table = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        params = {**teacher.postprocess_params, **dict(zip(keys, values))}
        preds = [(instances_from_boundary(m[0], m[1], dataset.mpp, **params), gt) for m, gt in cached]
        row = {**dict(zip(keys, values)), "dice": float(np.mean([dice(g, p) for p, g in preds])),
               "aji": float(np.mean([aji(g, p) for p, g in preds])),
               "pq": float(np.mean([pq(g, p) for p, g in preds]))}
        log.info("postprocess %s", row)
        table.append(row)
    best = max(table, key=lambda r: r["aji"])
    return {**teacher.postprocess_params, **{k: best[k] for k in keys}}, table


def evaluate_teacher(cfg: TeacherEvalConfig) -> int:
    """CLI entry: score, print a one-line summary, write JSON if asked."""
    from rckd.data.datasets.monuseg import MoNuSeg
    from rckd.models.teachers.registry import get_teacher
    from rckd.teacher.train import MONUSEG_HOLDOUT
    from rckd.runtime import resolve_device

    names = list(cfg.images) or (list(MONUSEG_HOLDOUT) if cfg.holdout else None)
    dataset = MoNuSeg(cfg.data, names=names, source=cfg.source)
    teacher = get_teacher(cfg.teacher, device=resolve_device(cfg.device), tta=cfg.tta)
    t0 = time.time()
    result = score_teacher(teacher, dataset)
    result.update(teacher=cfg.teacher, teacher_info=teacher.describe(), data=str(cfg.data),
                  images=dataset.names, seconds=round(time.time() - t0, 1))
    if cfg.json:
        write_json(Path(cfg.json), result)
    print(f"{cfg.teacher}: dice {result['dice']:.4f}  aji {result['aji']:.4f}  pq {result['pq']:.4f}"
          f"  ({len(dataset)} images, {result['seconds']:.0f} s)")
    return 0
