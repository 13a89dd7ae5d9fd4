"""Fold statistics against hand-computed values: summaries, paired and corrected t-tests, the verdicts."""

from __future__ import annotations

import json
import math

import pytest

from fmnist.cv.stats import (
    compare,
    corrected_resampled_t_test,
    format_p,
    mean,
    paired_t_test,
    sample_std,
    summarize,
    verdict,
)

T_975_DF4 = 2.776445105  # Student t 97.5% quantile, 4 degrees of freedom (tables)
T_975_DF9 = 2.262157163


def test_summary_mean_sample_std_and_t_interval():
    s = summarize([1, 2, 3, 4, 5])
    assert (s.n, s.mean) == (5, 3.0)
    assert s.std == pytest.approx(math.sqrt(2.5))  # sum of squares 10 / (n - 1)
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)  # 1.963243
    assert (s.ci_low, s.ci_high) == pytest.approx((3 - half, 3 + half))
    assert s.ci_low == pytest.approx(1.036757, abs=1e-6)
    assert mean([0.9, 0.92]) == pytest.approx(0.91)
    assert sample_std([0.9, 0.92]) == pytest.approx(0.0141421356)


def test_single_score_has_no_spread_or_interval():
    s = summarize([0.9])
    assert s.mean == 0.9 and math.isnan(s.std) and math.isnan(s.ci_low)
    assert json.dumps(s.as_dict(), allow_nan=False)  # NaN written as null
    assert s.as_dict()["std"] is None


def test_paired_t_test_known_values():
    # differences 1..5: mean 3, sd 1.5811, se 0.7071, t 4.2426, df 4, two-sided p 0.01324
    r = paired_t_test([11, 12, 13, 14, 15], [10, 10, 10, 10, 10])
    assert r.mean == 3.0 and r.df == 4
    assert r.se == pytest.approx(0.7071068, abs=1e-6)
    assert r.t == pytest.approx(4.2426407, abs=1e-6)
    assert r.p == pytest.approx(0.013236, abs=1e-5)
    assert (r.ci_low, r.ci_high) == pytest.approx((3 - T_975_DF4 * 0.7071068, 3 + T_975_DF4 * 0.7071068), abs=1e-6)
    # the sign follows a - b
    assert paired_t_test([10] * 5, [11, 12, 13, 14, 15]).t == pytest.approx(-4.2426407, abs=1e-6)


def test_corrected_resampled_t_test_known_values():
    # 5 folds x 2 repeats, differences 1..5 twice: mean 3, s^2 = 20/9.
    d = [1, 2, 3, 4, 5] * 2
    r = corrected_resampled_t_test(d, [0] * 10, test_train_ratio=1 / 4)
    # Nadeau-Bengio: Var(mean) = s^2 (1/n + n2/n1) = 20/9 * (1/10 + 1/4) = 0.77778
    assert r.se**2 == pytest.approx(20 / 9 * (1 / 10 + 1 / 4))
    assert r.se == pytest.approx(0.8819171, abs=1e-6)
    assert r.t == pytest.approx(3.4016803, abs=1e-6)
    assert r.df == 9
    assert r.p == pytest.approx(0.0078524, abs=1e-6)
    assert r.ci_high - r.mean == pytest.approx(T_975_DF9 * 0.8819171, abs=1e-6)
    plain = paired_t_test(d, [0] * 10)
    assert plain.t == pytest.approx(6.3639610, abs=1e-6)  # the uncorrected test is far more confident
    assert plain.p == pytest.approx(0.00013070, abs=1e-7)


def test_compare_uses_the_corrected_test_only_with_repeats():
    a = [0.92, 0.93, 0.91, 0.94, 0.92]
    b = [0.91, 0.92, 0.91, 0.92, 0.91]
    one = compare("wide", a, "base", b, folds=5, repeats=1)
    assert one.corrected is None and one.primary is one.paired
    assert one.primary.mean == pytest.approx(0.01)
    two = compare("wide", a + a, "base", b + b, folds=5, repeats=2)
    assert two.corrected is not None and two.primary is two.corrected
    assert two.corrected.se**2 == pytest.approx(sample_std([x - y for x, y in zip(a + a, b + b)]) ** 2 * (1 / 10 + 1 / 4))
    d = two.as_dict()
    assert d["test"] == "corrected resampled t-test" and d["p"] == two.corrected.p
    assert json.dumps(d, allow_nan=False)
    with pytest.raises(ValueError, match="same folds"):
        compare("a", [0.9, 0.9], "b", [0.9], folds=5)


def test_no_variance_in_the_differences():
    same = compare("b", [0.9, 0.91, 0.92], "a", [0.9, 0.91, 0.92], folds=3)
    assert same.primary.p == 1.0 and not same.significant
    assert same.sentence == "`b` vs `a`: +0.00 points, within noise (p = 1)"
    shifted = compare("b", [0.91, 0.92, 0.93], "a", [0.9, 0.91, 0.92], folds=3)
    # The same step on every fold (as coarse scores of tiny folds give) is not called real: it is not tested.
    assert math.isnan(shifted.primary.p) and not shifted.significant
    assert shifted.sentence == ("`b` vs `a`: +1.00 points, the same on every fold, which leaves no spread to test it "
                                "against (too few held-out images per fold?)")
    assert json.dumps(shifted.as_dict(), allow_nan=False)  # t = inf written as null
    # +2 points on every fold, as floats give it (0.92 - 0.90 is not 0.94 - 0.92 to the last bit): untested too.
    rounded = compare("b", [0.92, 0.92, 0.94, 0.90, 0.96], "a", [0.90, 0.90, 0.92, 0.88, 0.94], folds=5)
    assert math.isnan(rounded.primary.p) and "the same on every fold" in rounded.sentence


def test_verdict_sentences():
    assert verdict("baseline-same", "baseline", 0.07, 0.41) == "`baseline-same` vs `baseline`: +0.07 points, within noise (p = 0.41)"
    assert verdict("wide", "baseline", -0.274, 0.0132) == "`wide` vs `baseline`: -0.27 points, a real drop (p = 0.013)"
    assert verdict("x", "y", 0.5, 0.0004) == "`x` vs `y`: +0.50 points, a real improvement (p < 0.001)"
    assert verdict("x", "y", 0.5, 0.05) == "`x` vs `y`: +0.50 points, within noise (p = 0.05)"
    assert verdict("x", "y", 0.5, math.nan) == "`x` vs `y`: +0.50 points, too few folds to test"
    assert format_p(0.0132356) == "p = 0.013"


def test_comparison_sentence_speaks_in_points():
    # fractions in, percentage points out: +0.0007 -> +0.07 points
    a = [0.9107, 0.9127, 0.9097, 0.9117, 0.9112]
    b = [0.9100, 0.9110, 0.9100, 0.9110, 0.9105]
    c = compare("baseline-same", a, "baseline", b, folds=5)
    assert c.sentence.startswith("`baseline-same` vs `baseline`: +0.07 points, ")


def test_the_interval_of_an_accuracy_stays_in_0_to_1():
    s = summarize([0.99, 1.0, 0.2], bounds=(0.0, 1.0))
    assert 0.0 <= s.ci_low and s.ci_high == 1.0
    assert summarize([0.01, 0.0, 0.9], bounds=(0.0, 1.0)).ci_low == 0.0 and summarize([0.01, 0.0, 0.9]).ci_low < 0
