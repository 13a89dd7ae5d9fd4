"""Metrics against hand-computed values and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from fmnist.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    format_report,
)

# 3 classes, 7 examples. Worked by hand:
#   confusion (rows true): [[1,1,0],[0,2,0],[1,0,2]]  -> accuracy 5/7
#   precision: a 1/2, b 2/3, c 2/2;  recall: a 1/2, b 2/2, c 2/3;  f1: a 0.5, b 0.8, c 0.8
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0, 2])
CLASSES = ["a", "b", "c"]


def test_accuracy_by_hand():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 7)
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    # An absent class gives an empty row and column, not a smaller matrix.
    np.testing.assert_array_equal(confusion_matrix([0, 1], [0, 0], 3), [[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)


def test_classification_report_by_hand():
    r = classification_report(Y_TRUE, Y_PRED, CLASSES)
    got = {row["class"]: (row["precision"], row["recall"], row["f1"], row["support"]) for row in r["per_class"]}
    assert got["a"] == pytest.approx((0.5, 0.5, 0.5, 2))
    assert got["b"] == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert got["c"] == pytest.approx((1.0, 2 / 3, 0.8, 3))
    assert r["accuracy"] == pytest.approx(5 / 7)
    assert r["macro_avg"]["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert r["macro_avg"]["f1"] == pytest.approx(0.7)
    assert r["weighted_avg"]["precision"] == pytest.approx((0.5 * 2 + 2 / 3 * 2 + 1.0 * 3) / 7)
    assert r["macro_avg"]["support"] == r["weighted_avg"]["support"] == 7
    assert isinstance(r["per_class"][0]["support"], int)


def test_classification_report_zero_division_is_zero():
    # Class "d" is neither present nor predicted: all zeros, no warning-induced NaN.
    r = classification_report([0, 1], [0, 0], ["a", "b", "c", "d"])
    d = r["per_class"][3]
    assert (d["precision"], d["recall"], d["f1"], d["support"]) == (0.0, 0.0, 0.0, 0)
    assert r["per_class"][1]["precision"] == 0.0  # "b" never predicted


def test_agrees_with_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    names = [f"c{i}" for i in range(10)]
    ours = classification_report(y, p, names)
    theirs = skm.classification_report(y, p, labels=range(10), target_names=names, output_dict=True, zero_division=0)
    for row in ours["per_class"]:
        ref = theirs[row["class"]]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (ref["precision"], ref["recall"], ref["f1-score"], ref["support"]))
    for ours_key, ref_key in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        assert ours[ours_key]["f1"] == pytest.approx(theirs[ref_key]["f1-score"])
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    np.testing.assert_array_equal(confusion_matrix(y, p, 10), skm.confusion_matrix(y, p, labels=range(10)))


def test_format_report_matches_sklearn_layout():
    text = format_report(classification_report(Y_TRUE, Y_PRED, CLASSES), digits=4)
    assert text == skm.classification_report(Y_TRUE, Y_PRED, target_names=CLASSES, digits=4)


def test_macro_average_leaves_out_classes_the_labels_do_not_hold():
    from fmnist.metrics import classification_report

    # Two of four classes present, both perfectly predicted: macro 1.0, not 0.5 from two empty classes.
    report = classification_report([1, 1, 3], [1, 1, 3], ["a", "b", "c", "d"])
    assert report["macro_avg"]["recall"] == 1.0 and report["macro_avg"]["precision"] == 1.0
    assert report["per_class"][0]["support"] == 0  # still listed
    # The text says so, under the table (a reader averaged the rows shown and got another figure).
    assert format_report(report).endswith("macro avg: over the 2 classes with images here (the rows of support 0 "
                                          "are not averaged in)\n")
