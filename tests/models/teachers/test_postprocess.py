"""Instance separation: touching nuclei split by the boundary channel or the distance transform."""

import numpy as np

from rckd.metrics.instance import aji
from rckd.models.teachers.postprocess import instances_from_boundary, instances_from_mask
from rckd.teacher.sampling import boundary_target


def _two_touching():
    gt = np.zeros((40, 60), np.int32)
    yy, xx = np.mgrid[:40, :60]
    gt[(yy - 20) ** 2 + (xx - 20) ** 2 < 100] = 1
    gt[(yy - 20) ** 2 + (xx - 38) ** 2 < 100] = 2  # overlaps disc 1: they touch along a chord
    return gt


def test_boundary_channel_splits_touching_nuclei():
    gt = _two_touching()
    prob, bnd = (gt > 0).astype(np.float32), boundary_target(gt)
    merged = instances_from_boundary(prob, np.zeros_like(bnd), mpp=0.25)
    split = instances_from_boundary(prob, bnd, mpp=0.25)
    assert merged.max() == 1 and split.max() == 2
    assert aji(gt, split) > 0.9


def test_distance_transform_splits_and_drops_specks():
    gt = _two_touching()
    mask = gt > 0
    mask[2, 2] = True  # a one-pixel speck, below min_area_um2
    inst = instances_from_mask(mask, mpp=0.25)
    assert inst.max() == 2 and inst[2, 2] == 0
    assert aji(gt, inst) > 0.85
