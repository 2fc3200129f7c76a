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

from rckd.config import Config, device_spec, option
from rckd.io import write_json
from rckd.metrics.instance import instance_scores
from rckd.models.teachers.base import TTA_VIEWS
from rckd.paths import data_root

__all__ = ["TeacherEvalConfig", "evaluate_teacher", "score_teacher", "tune_postprocess", "POSTPROCESS_GRID",
           "MONUSEG_HOLDOUT"]

log = logging.getLogger(__name__)

#: The shipped teacher's held-out MoNuSeg images, fixed before training: every fifth image of the
#: sorted 30 shared training ids, from the third. ``rckd teacher train`` leaves them out.
MONUSEG_HOLDOUT = ("TCGA-21-5786-01Z-00-DX1", "TCGA-A7-A13F-01Z-00-DX1", "TCGA-B0-5710-01Z-00-DX1",
                   "TCGA-E2-A1B5-01Z-00-DX1", "TCGA-G9-6362-01Z-00-DX1", "TCGA-KB-A93J-01A-01-TS1")


@dataclasses.dataclass
class TeacherEvalConfig(Config):
    """Dice, AJI and PQ of a nuclei teacher on a MoNuSeg-layout root."""

    teacher: str = option("default", help="teacher name ('default', 'classical', ...) or checkpoint path")
    data: str = option(default_factory=lambda: str(data_root() / "monuseg" / "train"),
                       help="MoNuSeg-layout root")
    images: list[str] = option(default_factory=list, help="image ids to evaluate (default: all)")
    holdout: bool = option(False, help="evaluate on the shipped teacher's held-out images only")
    source: str = option("auto", help="ground truth: 'auto', 'masks' or 'xml'", choices=("auto", "masks", "xml"))
    json: str | None = option(None, help="write the scores to this JSON file (none: do not)")
    device: str = option("auto", check=device_spec, help="auto, cpu, cuda, cuda:N or mps")
    tta: int | None = option(None, choices=TTA_VIEWS,
                             help="dihedral test-time views (none: the teacher's own setting)")


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


def evaluate_teacher(cfg: TeacherEvalConfig) -> dict:
    """Score the teacher, write JSON if asked, return the scores (see the module docstring)."""
    from rckd.data.datasets.monuseg import MoNuSeg
    from rckd.models.teachers.registry import get_teacher

    names = list(cfg.images) or (list(MONUSEG_HOLDOUT) if cfg.holdout else None)
    dataset = MoNuSeg(cfg.data, names=names, source=cfg.source)
    teacher = get_teacher(cfg.teacher, device=cfg.device, tta=cfg.tta)
    t0 = time.time()
    result = score_teacher(teacher, dataset)
    result.update(teacher=cfg.teacher, teacher_info=teacher.describe(), data=str(cfg.data),
                  images=dataset.names, seconds=round(time.time() - t0, 1))
    if cfg.json:
        write_json(Path(cfg.json), result)
    return result
