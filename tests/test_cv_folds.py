"""Cross-validation folds: the seed's KFold, identical across calls, disjoint, covering, stratified, repeated."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold

from fmnist.cv.folds import fold_seed, make_folds
from fmnist.errors import UsageError


def _labels(n: int = 200, classes: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, classes, size=n)


def test_seed_1_gives_the_seed_documents_kfold():
    labels = _labels(203)
    folds = make_folds(labels, k=5, seed=1)
    expected = list(KFold(5, shuffle=True, random_state=1).split(np.zeros((203, 1))))
    assert len(folds) == 5
    for fold, (train, test) in zip(folds, expected):
        np.testing.assert_array_equal(fold.train, train)
        np.testing.assert_array_equal(fold.held_out, test)
    assert [f.key for f in folds] == ["r1-f1", "r1-f2", "r1-f3", "r1-f4", "r1-f5"]
    assert folds[1].label == "fold 2/5"


def test_same_seed_same_folds_other_seed_other_folds():
    labels = _labels()
    a, b = make_folds(labels, 5, seed=1), make_folds(labels, 5, seed=1)
    assert [f.fingerprint for f in a] == [f.fingerprint for f in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.held_out, y.held_out)
    c = make_folds(labels, 5, seed=2)
    assert {f.fingerprint for f in a}.isdisjoint({f.fingerprint for f in c})


@pytest.mark.parametrize("stratified", [False, True])
def test_folds_are_disjoint_and_cover_the_set(stratified):
    n = 201
    folds = make_folds(_labels(n), k=4, seed=3, stratified=stratified)
    held = np.concatenate([f.held_out for f in folds])
    np.testing.assert_array_equal(np.sort(held), np.arange(n))  # every image held out exactly once
    for f in folds:
        assert np.intersect1d(f.train, f.held_out).size == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([f.train, f.held_out])), np.arange(n))
        assert len(f.held_out) in (50, 51)


def test_stratified_folds_keep_class_shares():
    # Imbalanced: 50% / 30% / 20% of 200 images, shuffled.
    labels = np.random.default_rng(1).permutation(np.repeat([0, 1, 2], [100, 60, 40]))
    for fold in make_folds(labels, k=5, seed=1, stratified=True):
        counts = np.bincount(labels[fold.held_out], minlength=3)
        np.testing.assert_array_equal(counts, [20, 12, 8])
    # Plain KFold does not promise that; on this data at least one fold is off.
    plain = [np.bincount(labels[f.held_out], minlength=3).tolist() for f in make_folds(labels, k=5, seed=1)]
    assert any(c != [20, 12, 8] for c in plain)


def test_repeats_reshuffle_with_seed_plus_repeat():
    labels = _labels(100)
    folds = make_folds(labels, k=5, seed=7, repeats=3)
    assert len(folds) == 15
    assert [f.key for f in folds[4:6]] == ["r1-f5", "r2-f1"]
    assert folds[5].label == "repeat 2/3 fold 1/5"
    # Repeat 1 is the unrepeated folds; repeat r is KFold(random_state=seed + r - 1).
    assert [f.fingerprint for f in folds[:5]] == [f.fingerprint for f in make_folds(labels, 5, seed=7)]
    second = list(KFold(5, shuffle=True, random_state=8).split(np.zeros((100, 1))))
    for fold, (_, test) in zip(folds[5:10], second):
        np.testing.assert_array_equal(fold.held_out, test)
    assert len({f.fingerprint for f in folds}) == 15


def test_fold_seed_depends_on_seed_repeat_and_fold_only():
    assert fold_seed(1, 1, 1) == fold_seed(1, 1, 1)
    seeds = {fold_seed(s, r, f) for s in (1, 2) for r in (1, 2) for f in range(1, 6)}
    assert len(seeds) == 20
    assert all(0 <= s < 2**32 for s in seeds)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 1}, "at least 2 folds"),
        ({"k": 300}, "more than the 200 training images"),
        ({"repeats": 0}, "at least 1 repeat"),
        ({"seed": -1}, "non-negative"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        make_folds(_labels(), **kwargs)


def test_stratified_needs_enough_images_per_class():
    labels = np.array([0] * 50 + [1] * 3)
    with pytest.raises(UsageError, match="rarest class has only 3 images"):
        make_folds(labels, k=5, stratified=True)
