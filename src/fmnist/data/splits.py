"""Which images train and which validate: seeded subsets and stratified hold-out splits, as index arithmetic."""

from __future__ import annotations

import numpy as np

from fmnist.config import Recipe
from fmnist.errors import UsageError

Arrays = tuple[np.ndarray, np.ndarray]  # uint8 images [N, 28, 28], int64 labels [N]


def subset(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> Arrays:
    """A seeded random subset of `n` examples (all of them if n >= len)."""
    if n >= len(labels):
        return images, labels
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    return images[idx], labels[idx]


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) holding out `fraction` of each class, seeded: at least one image of a class with two or
    more (so every class is checked), and never a class's last image (so every class is trained)."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(1, int(round(len(idx) * fraction))), len(idx) - 1)
        val_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def split_for_validation(recipe: Recipe, images: np.ndarray, labels: np.ndarray, test: Arrays,
                         seed: int) -> tuple[Arrays, Arrays | None]:
    """The (train, validation) pair for the recipe's validation protocol."""
    if recipe.validation == "test":
        return (images, labels), test
    if recipe.validation == "holdout":
        tr, va = holdout_split(labels, recipe.val_fraction, seed)
        return (images[tr], labels[tr]), (images[va], labels[va])
    if recipe.validation == "none":
        return (images, labels), None
    raise UsageError(f"unknown validation protocol {recipe.validation!r}; use test, holdout or none")


def describe_validation(validation: str, val_fraction: float = 0.1) -> str:
    """The per-epoch validation protocol in plain words."""
    if validation == "test":
        return "per-epoch validation on the test set, for monitoring only (nothing is selected on it), as the seed did"
    if validation == "holdout":
        return f"per-epoch validation on a held-out {val_fraction:.0%} of the training set (stratified, seeded); the test set is used once, at the end"
    if validation == "none":
        return "no per-epoch validation; the test set is used once, at the end"
    return str(validation)
