import numpy as np
import pytest

from rckd.metrics.classification import (accuracy, balanced_accuracy, classification_metrics,
                                         confusion_matrix, macro_f1)

# truth: 3 x class 0, 2 x class 1, 1 x class 2
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 0, 2]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_metrics_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert accuracy(cm) == pytest.approx(4 / 6)
    assert balanced_accuracy(cm) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: class0 2*2/(3+3)=2/3, class1 2*1/(2+2)=1/2, class2 1
    assert macro_f1(cm) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    m = classification_metrics(Y_TRUE, Y_PRED, 4)  # class 3 absent everywhere: left out
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3) and m["n"] == 6


def test_f1_differs_from_balanced_accuracy():
    cm = confusion_matrix([0, 0, 0, 0, 1], [0, 0, 0, 1, 1], 2)
    assert balanced_accuracy(cm) == pytest.approx((3 / 4 + 1) / 2)
    assert macro_f1(cm) == pytest.approx((6 / 7 + 2 / 3) / 2)


def test_bad_labels():
    with pytest.raises(ValueError, match="labels must lie"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix([0, 1], [0], 3)
    assert np.isnan(accuracy(confusion_matrix([], [], 2)))
