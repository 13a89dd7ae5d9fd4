"""Statistics of fold scores: summaries with t intervals, and paired tests of whether two recipes differ.

Fold scores are not independent samples (the folds' training sets overlap), so the plain paired t-test is
optimistic. With repeated K-fold the corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank
2004) inflates the variance of the mean difference from s²/n to s² (1/n + n2/n1), where n2/n1 is the
held-out/train size ratio, 1/(K-1) for K folds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

from fmnist.reports.markdown import format_p

ALPHA = 0.05
CONFIDENCE = 0.95


def _array(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError("need a non-empty 1-D sequence of scores")
    return a


def mean(x: Sequence[float]) -> float:
    """Arithmetic mean."""
    return float(_array(x).mean())


def sample_std(x: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); NaN for a single value."""
    a = _array(x)
    return float(a.std(ddof=1)) if len(a) > 1 else math.nan


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t critical value for `confidence` with `df` degrees of freedom."""
    return float(st.t.ppf(0.5 + confidence / 2, df))


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and t-based confidence interval of one recipe's fold scores (same units as the scores)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict:
        """JSON-ready (NaN becomes null)."""
        return {k: _finite(v) for k, v in self.__dict__.items()}


def summarize(x: Sequence[float], confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = None) -> Summary:
    """n, mean, sample std and the t interval mean ± t(n-1) · s / √n, clipped to `bounds` when given (an accuracy
    cannot leave [0, 1], however wide the interval of a few noisy folds)."""
    a = _array(x)
    m, s, n = float(a.mean()), sample_std(a), len(a)
    half = t_quantile(n - 1, confidence) * s / math.sqrt(n) if n > 1 else math.nan
    low, high = m - half, m + half
    if bounds is not None and not math.isnan(half):
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Summary(n, m, s, low, high, confidence)


@dataclass(frozen=True)
class TTest:
    """A t-test of the mean of paired differences a - b being zero."""

    test: str  # "paired t-test" or "corrected resampled t-test"
    n: int
    mean: float  # mean difference a - b
    se: float  # its standard error (corrected where the test corrects it)
    t: float
    df: int
    p: float  # two-sided
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict:
        """JSON-ready (NaN and infinities become null)."""
        return {k: _finite(v) for k, v in self.__dict__.items()}


SAME_STEP = 1e-9  # a spread of the fold differences below this (relative) is rounding: every fold moved alike


def _t_test(test: str, a: Sequence[float], b: Sequence[float], var_factor: float, confidence: float) -> TTest:
    """t-test of mean(a - b) with Var(mean) = s² · var_factor (1/n for the plain test)."""
    d = _array(a) - _array(b)
    n = len(d)
    m = float(d.mean())
    if n < 2:
        return TTest(test, n, m, math.nan, math.nan, 0, math.nan, math.nan, math.nan)
    se = float(d.std(ddof=1)) * math.sqrt(var_factor)
    if se <= SAME_STEP * max(1.0, abs(m)):  # 0.02 - 0.0 and 0.94 - 0.92 differ by float rounding alone
        se = 0.0
        # Every fold moved by the same amount: no noise to weigh it against. None at all is no difference; the same
        # nonzero step everywhere (coarse scores of tiny folds) is not evidence either way, so it is not tested.
        t, p = (0.0, 1.0) if abs(m) <= SAME_STEP else (math.copysign(math.inf, m), math.nan)
    else:
        t = m / se
        p = float(2 * st.t.sf(abs(t), n - 1))
    half = t_quantile(n - 1, confidence) * se
    return TTest(test, n, m, se, t, n - 1, p, m - half, m + half)


def paired_t_test(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> TTest:
    """Paired t-test on the per-fold differences a - b (scores of two recipes on the same folds)."""
    n = len(_array(a))
    return _t_test("paired t-test", a, b, 1.0 / n, confidence)


def corrected_resampled_t_test(
    a: Sequence[float], b: Sequence[float], test_train_ratio: float, confidence: float = CONFIDENCE
) -> TTest:
    """Nadeau–Bengio corrected resampled t-test: Var(mean) = s² (1/n + n2/n1), n2/n1 = held-out/train size."""
    n = len(_array(a))
    return _t_test("corrected resampled t-test", a, b, 1.0 / n + test_train_ratio, confidence)


def verdict(a: str, b: str, diff_points: float, p: float, alpha: float = ALPHA,
            untested: str = "too few folds to test") -> str:
    """The plain sentence: "`a` vs `b`: +0.07 points, within noise (p = 0.41)"; `untested` says why when p is NaN."""
    head = f"`{a}` vs `{b}`: {round(diff_points, 2) or 0.0:+.2f} points"  # never "-0.00"
    if math.isnan(p):
        return f"{head}, {untested}"
    if p >= alpha:
        return f"{head}, within noise ({format_p(p)})"
    return f"{head}, a real {'improvement' if diff_points > 0 else 'drop'} ({format_p(p)})"


@dataclass(frozen=True)
class Comparison:
    """Recipe `a` against recipe `b` on the same folds; scores are fractions, the sentence speaks in points."""

    a: str
    b: str
    paired: TTest
    corrected: TTest | None  # with repeated K-fold only
    alpha: float = ALPHA

    @property
    def primary(self) -> TTest:
        """The test the verdict rests on: the corrected one when there is one."""
        return self.corrected or self.paired

    @property
    def significant(self) -> bool:
        """Whether the primary test rejects "no difference" at `alpha`."""
        return self.primary.p < self.alpha

    @property
    def sentence(self) -> str:
        """The verdict in one plain sentence."""
        why = ("the same on every fold, which leaves no spread to test it against (too few held-out images per fold?)"
               if self.primary.n >= 2 else "too few folds to test")
        return verdict(self.a, self.b, self.primary.mean * 100, self.primary.p, self.alpha, why)

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {
            "a": self.a,
            "b": self.b,
            "test": self.primary.test,
            "mean_difference": _finite(self.primary.mean),
            "ci_low": _finite(self.primary.ci_low),
            "ci_high": _finite(self.primary.ci_high),
            "p": _finite(self.primary.p),
            "significant": self.significant,
            "alpha": self.alpha,
            "sentence": self.sentence,
            "paired": self.paired.as_dict(),
            "corrected": self.corrected.as_dict() if self.corrected else None,
        }


def compare(a: str, scores_a: Sequence[float], b: str, scores_b: Sequence[float], folds: int, repeats: int = 1,
            alpha: float = ALPHA, confidence: float = CONFIDENCE) -> Comparison:
    """Compare two recipes' scores on the same K folds × R repeats (paired; corrected when R > 1)."""
    if len(scores_a) != len(scores_b):
        raise ValueError(f"{a} has {len(scores_a)} fold scores and {b} {len(scores_b)}: a paired test needs the same folds")
    paired = paired_t_test(scores_a, scores_b, confidence)
    corrected = corrected_resampled_t_test(scores_a, scores_b, 1.0 / (folds - 1), confidence) if repeats > 1 else None
    return Comparison(a, b, paired, corrected, alpha)


def _finite(v):
    """NaN/inf floats as None, for strict JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
