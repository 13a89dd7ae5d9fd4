"""Cross-validation: the same folds for every recipe, fold scores, paired comparisons, resumable parallel runs."""

from fmnist.cv.folds import Fold, fold_seed, make_folds
from fmnist.cv.stats import (
    Comparison,
    Summary,
    TTest,
    compare,
    corrected_resampled_t_test,
    paired_t_test,
    summarize,
    verdict,
)

__all__ = [
    "Comparison",
    "Fold",
    "Summary",
    "TTest",
    "compare",
    "corrected_resampled_t_test",
    "fold_seed",
    "make_folds",
    "paired_t_test",
    "summarize",
    "verdict",
]
