"""Cross-validation folds: which training images each fold holds out, fixed by the seed alone.

Repeat r (1-based) shuffles with random_state = seed + r - 1, so `--seed 1 --folds 5` gives exactly the
seed document's `KFold(5, shuffle=True, random_state=1)` folds, and every recipe of one call (and every
later call with the same seed) is trained and scored on the same images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from fmnist.errors import UsageError


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold: indices into the (possibly --limit'ed) training set; repeat and index are 1-based."""

    repeat: int
    index: int
    folds: int  # K: folds per repeat
    repeats: int  # R
    train: np.ndarray  # int64 indices the model trains on
    held_out: np.ndarray  # int64 indices it is scored on (sorted, as sklearn yields them)

    @property
    def key(self) -> str:
        """`r<repeat>-f<fold>`: the fold's file name stem and table row label."""
        return f"r{self.repeat}-f{self.index}"

    @property
    def label(self) -> str:
        """`fold 2/5`, or `repeat 1/3 fold 2/5` with repeated K-fold."""
        fold = f"fold {self.index}/{self.folds}"
        return fold if self.repeats == 1 else f"repeat {self.repeat}/{self.repeats} {fold}"

    @property
    def fingerprint(self) -> str:
        """A short hash of the held-out indices and the set size: two folds with one fingerprint are the same fold."""
        n = len(self.train) + len(self.held_out)
        digest = hashlib.sha256(f"{n}:".encode() + np.asarray(self.held_out, dtype="<i8").tobytes())
        return digest.hexdigest()[:16]


def make_folds(labels: np.ndarray, k: int = 5, seed: int = 1, stratified: bool = False, repeats: int = 1) -> list[Fold]:
    """The K folds of each of `repeats` shuffles of `labels`' indices, repeat by repeat, fold by fold."""
    labels = np.asarray(labels)
    n = len(labels)
    if k < 2:
        raise UsageError(f"--folds {k}: cross-validation needs at least 2 folds")
    if repeats < 1:
        raise UsageError(f"--repeats {repeats}: needs at least 1 repeat")
    if seed < 0:
        raise UsageError(f"--seed {seed}: use a non-negative seed")
    if n < k:
        raise UsageError(f"--folds {k} is more than the {n} training images; use fewer folds or more images (--limit)")
    if stratified:
        counts = np.bincount(labels)
        smallest = int(counts[counts > 0].min())
        if smallest < k:
            raise UsageError(
                f"--stratified --folds {k}: the rarest class has only {smallest} image{'s' if smallest != 1 else ''}, fewer than the folds; "
                "use fewer folds, more images (--limit), or drop --stratified"
            )
    folds = []
    for r in range(1, repeats + 1):
        state = seed + r - 1
        splitter = StratifiedKFold(k, shuffle=True, random_state=state) if stratified else KFold(k, shuffle=True, random_state=state)
        for i, (train, held_out) in enumerate(splitter.split(np.zeros((n, 1)), labels), start=1):
            folds.append(Fold(r, i, k, repeats, train.astype(np.int64), held_out.astype(np.int64)))
    return folds


def fold_seed(seed: int, repeat: int, fold: int) -> int:
    """The training seed of a fold: a function of (seed, repeat, fold) only, so every executor and every recipe agree."""
    # Same seed for every recipe on a fold (common random numbers: the paired comparison sees less noise).
    return int(np.random.SeedSequence([seed, repeat, fold]).generate_state(1)[0])
