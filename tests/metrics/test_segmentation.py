import numpy as np
import pytest
import torch

from rckd.metrics.segmentation import SegmentationMeter, segmentation_metrics


def test_binary_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 1]])
    meter = SegmentationMeter(2)
    meter.update(pred, target)
    m = meter.compute()
    # bg: TP 3, FP 1, FN 1 -> IoU 3/5; fg: TP 3, FP 1, FN 1 -> IoU 3/5, Dice 6/8
    assert meter.cm.tolist() == [[3, 1], [1, 3]]
    assert m["miou"] == pytest.approx(0.6) and m["miou_fg"] == pytest.approx(0.6)
    assert m["dice"] == pytest.approx(0.75) and m["pixel_accuracy"] == pytest.approx(0.75)


def test_multiclass_accumulates_and_skips_absent():
    meter = SegmentationMeter(4, ignore_index=255)
    meter.update(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    meter.update(np.array([0, 0]), np.array([0, 255]))  # the ignored pixel does not count
    m = meter.compute()
    iou = [2 / 2, 1 / 2, 1 / 2]  # class 3 absent: left out
    assert m["iou"][:3] == pytest.approx(iou) and m["iou"][3] is None
    assert m["miou"] == pytest.approx(np.mean(iou))
    assert m["miou_fg"] == pytest.approx(0.5)
    assert m["dice"] == pytest.approx(np.mean([2 / 3, 2 / 3]))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="pixels"):
        SegmentationMeter(2).update(torch.zeros(3), torch.zeros(4))
    assert np.isnan(segmentation_metrics(np.zeros((2, 2), np.int64))["miou"])
