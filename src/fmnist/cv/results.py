"""Cross-validation's typed records: the call (`CVConfig`), the data, one task per (recipe, fold), a finished
fold (`FoldResult`, the content of its file), the progress hooks, and the whole result (`CVResult`, cv.json)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import __version__
from fmnist.config import MAX_SEED, RUN_PRECISIONS, SEED_RANGE, Recipe, TrainOptions
from fmnist.cv.folds import Fold
from fmnist.cv.stats import Comparison, Summary
from fmnist.errors import UsageError
from fmnist.train.loop import Callbacks


@dataclass(frozen=True)
class CVConfig:
    """One cross-validation call: the recipes, the folds, and how to run them."""

    recipes: tuple[Recipe, ...]
    out: Path
    folds: int = 5  # K
    seed: int = 1  # repeat r shuffles with random_state seed + r - 1; also seeds --limit's subset
    stratified: bool = False
    repeats: int = 1
    limit: int | None = None  # a seeded subset of this many training images, taken before folding
    jobs: int = 1  # folds trained at once
    threads: int | None = None  # intra-op threads per fold; default available cores // jobs
    device: str = "auto"
    precision: str = "recipe"
    ray: bool = False  # run folds as tasks on a local Ray instance (started or joined)
    ray_address: str | None = None  # join this Ray cluster instead

    def __post_init__(self) -> None:
        # Checked when the call is made, before any data is read or anything is written.
        whole = isinstance(self.seed, int) and not isinstance(self.seed, bool)
        if not whole or not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be a whole number from {SEED_RANGE}, got {self.seed!r}")
        if isinstance(self.repeats, int) and self.repeats > 1 and self.seed + self.repeats - 1 > MAX_SEED:
            raise UsageError(f"--seed {self.seed} --repeats {self.repeats}: repeat r shuffles with seed + r - 1, which "
                             f"must stay within {SEED_RANGE}; use a smaller --seed")
        if self.precision not in RUN_PRECISIONS:
            raise UsageError(f"--precision {self.precision!r} is not one of {', '.join(RUN_PRECISIONS)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recipes by name; their full configs are stored per recipe in cv.json)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return d | {"recipes": [r.name for r in self.recipes], "out": str(self.out)}


@dataclass(frozen=True)
class CVData:
    """The training images folded over (uint8 [N, 28, 28], int64 [N]) and the checksum naming that exact data."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = "memory"
    checksum: str = ""  # the dataset's checksum; empty: a hash of the arrays (see `digest`)

    @property
    def digest(self) -> str:
        """The checksum recorded in every fold file, so folds of other data are never read back."""
        if self.checksum:
            return self.checksum
        h = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        return "arrays-" + h.hexdigest()

    @classmethod
    def from_dataset(cls, ds: Any) -> CVData:
        """The training split of a loaded fmnist.data.Dataset."""
        return cls(ds.train.images, ds.train.labels, len(ds.classes), ds.name, ds.checksum)


@dataclass(frozen=True)
class FoldTask:
    """Train `recipe` on `fold` with `options`: everything a worker needs besides the arrays."""

    recipe: Recipe
    fold: Fold
    options: TrainOptions
    data_checksum: str
    limit: int | None
    checkpoint: str | None = None  # where the fold's training state is kept while it trains (local executors)

    @property
    def label(self) -> str:
        """`baseline fold 1/5` (with the repeat when there are several)."""
        return f"{self.recipe.name} {self.fold.label}"


@dataclass
class FoldResult:
    """One finished fold: its score (final-epoch held-out accuracy, a fraction), history and provenance."""

    recipe: str
    repeat: int
    fold: int
    folds: int
    score: float
    loss: float
    seconds: float
    history: list[dict[str, Any]]
    fingerprint: str
    data_checksum: str
    limit: int | None
    seed: int  # the fold's training seed
    precision: str  # as asked for (auto|bf16|fp32)
    recipe_config: dict[str, Any]
    train_size: int
    held_out_size: int
    device: str = ""
    autocast: str = ""  # what precision resolved to
    threads: int = 0
    finished: str = ""
    reused: bool = False  # read back from its file rather than trained in this call (not saved)

    @property
    def key(self) -> str:
        """`r<repeat>-f<fold>`."""
        return f"r{self.repeat}-f{self.fold}"

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        """The fold file's content (without `reused`; without the history when `history` is False)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "reused"}
        if not history:
            del d["history"], d["recipe_config"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FoldResult:
        """Parse a fold file's content; KeyError/TypeError/ValueError when it is not one."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "reused"}
        result = cls(**known)
        if not (_number(result.score) and 0.0 <= result.score <= 1.0):
            raise ValueError("no score, or one that is not an accuracy between 0 and 1")
        if not isinstance(result.history, list) or not result.history or not all(map(_epoch_row, result.history)):
            raise ValueError("no history, or a row of it that is not an epoch's figures")
        return result

    def mismatch(self, task: FoldTask) -> str | None:
        """Why this result cannot stand for `task` (None when it can)."""
        checks = {
            "a different recipe": (self.recipe_config, json_roundtrip(task.recipe.to_dict())),
            "a different fold": ((self.repeat, self.fold, self.folds), (task.fold.repeat, task.fold.index, task.fold.folds)),
            "different data": (self.data_checksum, task.data_checksum),  # first: other data, other images
            "different held-out images": (self.fingerprint, task.fold.fingerprint),
            "a different --limit": (self.limit, task.limit),
            "a different training seed": (self.seed, task.options.seed),
            "a different precision": (self.precision, task.options.precision),
        }
        for what, (saved, wanted) in checks.items():
            if saved != wanted:
                return what
        return None


def _number(value: Any) -> bool:
    """A finite int or float (not a bool, not NaN)."""
    return type(value) in (int, float) and math.isfinite(value)


def _epoch_row(row: Any) -> bool:
    """Whether a fold history's row holds an epoch's figures (fmnist.train.stats.EpochStats as a dict)."""
    return (isinstance(row, dict) and type(row.get("epoch")) is int and row["epoch"] >= 1
            and all(_number(row.get(k)) for k in ("train_loss", "train_acc"))
            and all(row.get(k) is None or _number(row[k]) for k in ("val_loss", "val_acc")))


def json_roundtrip(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


class CVProgress:
    """Hooks the runner calls; the default does nothing. The CLI prints from them."""

    def start(self, pending: int, reused: int, executor: str, threads: int) -> None:
        """Before training: how many folds will train, how many were read back, and where they run."""

    def note(self, message: str) -> None:
        """Something the user should know (a fold file that cannot be reused, and why)."""

    def fold_callbacks(self, task: FoldTask) -> Callbacks | None:
        """Per-epoch callbacks for a fold trained in this process (sequential runs only)."""
        return None

    def fold_done(self, result: FoldResult, fold: Fold) -> None:
        """A fold finished (or was read back: result.reused)."""


@dataclass
class CVResult:
    """Everything a cross-validation call produced; `to_dict` is cv.json."""

    config: CVConfig
    data: dict[str, Any]
    folds: list[Fold]
    results: dict[str, list[FoldResult]]  # recipe -> its folds, in fold order
    summaries: dict[str, Summary]
    comparisons: list[Comparison]
    executor: str
    threads: int
    trained: int
    reused: int
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    def scores(self) -> dict[str, list[float]]:
        """Fold scores per recipe (fractions), in fold order: the same folds side by side."""
        return {name: [r.score for r in rs] for name, rs in self.results.items()}

    def to_dict(self, histories: bool = True) -> dict[str, Any]:
        """cv.json: config, data, folds, per-recipe summary and folds, comparisons, figures."""
        recipes = {}
        for recipe in self.config.recipes:
            rs = self.results[recipe.name]
            recipes[recipe.name] = {
                "recipe": json_roundtrip(recipe.to_dict()),
                "summary": self.summaries[recipe.name].as_dict(),
                "scores": [r.score for r in rs],
                "folds": [r.to_dict(history=histories) | {"reused": r.reused} for r in rs],
            }
        return {
            "fmnist_version": __version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "config": self.config.to_dict(),
            "data": self.data,
            "executor": self.executor,
            "threads": self.threads,
            "trained": self.trained,
            "reused": self.reused,
            "folds": [
                {"key": f.key, "repeat": f.repeat, "fold": f.index, "fingerprint": f.fingerprint,
                 "train_size": len(f.train), "held_out_size": len(f.held_out)}
                for f in self.folds
            ],
            "recipes": recipes,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "figures": self.figures,
            "report": "report.md",
        }
