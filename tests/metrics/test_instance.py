"""Dice, AJI and PQ against values computed by hand on tiny instance maps."""

import numpy as np
import pytest

from rckd.metrics.instance import aji, dice, instance_scores, panoptic_quality, pq


def _canvas():
    return np.zeros((6, 8), dtype=np.int32)


def test_dice_by_hand():
    gt, pred = _canvas(), _canvas()
    gt[0:2, 0:2] = 1          # 4 px
    pred[0:2, 0:3] = 5        # 6 px, 4 shared
    assert dice(gt, pred) == pytest.approx(2 * 4 / (4 + 6))
    assert dice(_canvas(), _canvas()) == 1.0
    assert dice(gt, _canvas()) == 0.0


def test_aji_one_prediction_covering_two_nuclei():
    gt, pred = _canvas(), _canvas()
    gt[0:2, 0:2] = 1
    gt[0:2, 3:5] = 2
    pred[0:2, 0:5] = 7        # 10 px: covers both (4 + 4) and the 2 px gap
    # each nucleus: intersection 4, union 10 -> C = 8, U = 20
    assert aji(gt, pred) == pytest.approx(8 / 20)


def test_aji_counts_unmatched_predictions_and_missed_nuclei():
    gt, pred = _canvas(), _canvas()
    gt[0:2, 0:2] = 1          # found exactly
    gt[4:6, 6:8] = 2          # missed: 4 px only in U
    pred[0:2, 0:2] = 3
    pred[3, 0:3] = 4          # false positive: 3 px only in U
    assert aji(gt, pred) == pytest.approx(4 / (4 + 4 + 3))


def test_pq_by_hand():
    gt, pred = _canvas(), _canvas()
    gt[0:2, 0:2] = 1
    gt[0:2, 4:6] = 2
    pred[0:2, 0:2] = 1        # IoU 1 -> TP
    pred[0:2, 5:7] = 2        # IoU 2/6 with nucleus 2 -> FP, and nucleus 2 is a FN
    res = panoptic_quality(gt, pred)
    assert (res["tp"], res["fp"], res["fn"]) == (1, 1, 1)
    assert res["sq"] == pytest.approx(1.0)
    assert res["dq"] == pytest.approx(1 / (1 + 0.5 + 0.5))
    assert pq(gt, pred) == pytest.approx(0.5)


def test_pq_averages_iou_of_matches():
    gt, pred = _canvas(), _canvas()
    gt[0:2, 0:3] = 1          # 6 px
    pred[0:2, 0:4] = 9        # 8 px, IoU 6/8 = 0.75 > 0.5
    assert pq(gt, pred) == pytest.approx(0.75)


def test_ids_need_not_be_consecutive_and_shapes_must_match():
    gt, pred = _canvas(), _canvas()
    gt[0:2, 0:2] = 40
    pred[0:2, 0:2] = 1000
    s = instance_scores(gt, pred)
    assert s["dice"] == s["aji"] == s["pq"] == pytest.approx(1.0)
    assert (s["n_gt"], s["n_pred"]) == (1, 1)
    with pytest.raises(ValueError, match="shapes differ"):
        aji(gt, np.zeros((2, 2), np.int32))
