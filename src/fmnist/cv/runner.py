"""Cross-validation runs: one task per (recipe, fold), run in-process, in a process pool, or as Ray tasks.

The driver alone writes files. Each finished fold becomes OUT/folds/<recipe>/r<repeat>-f<fold>.json,
written atomically once the fold has finished, so an interrupted fold leaves nothing behind (at most a
temporary file, which is ignored and cleaned). A rerun with the same OUT reads a fold back instead of
retraining it when the file records the same recipe, data, limit, fold and training seed. At the end
cv.json, the figures and report.md are written from all the folds.

A fold's training seed depends on (seed, repeat, fold) only, and its thread count is set explicitly, so
the in-process, process-pool and Ray executors give the same scores (CPU results can depend on the number
of intra-op threads, so compare executors at the same --threads).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmnist import __version__
from fmnist.cv.folds import Fold, fold_seed, make_folds
from fmnist.cv.stats import Comparison, Summary, compare, summarize
from fmnist.engine.device import available_cores, resolve_device, resolve_precision
from fmnist.engine.trainer import Callbacks, TrainOptions, fit
from fmnist.errors import FmnistError, UsageError
from fmnist.fileio import write_json
from fmnist.recipes import Recipe

CV_JSON = "cv.json"
FOLDS_DIR = "folds"


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
        if not isinstance(result.score, (int, float)) or not isinstance(result.history, list) or not result.history:
            raise ValueError("no score or history")
        return result

    def mismatch(self, task: FoldTask) -> str | None:
        """Why this result cannot stand for `task` (None when it can)."""
        checks = {
            "a different recipe": (self.recipe_config, _json_roundtrip(task.recipe.to_dict())),
            "a different fold": ((self.repeat, self.fold, self.folds), (task.fold.repeat, task.fold.index, task.fold.folds)),
            "different held-out images": (self.fingerprint, task.fold.fingerprint),
            "different data": (self.data_checksum, task.data_checksum),
            "a different --limit": (self.limit, task.limit),
            "a different training seed": (self.seed, task.options.seed),
            "a different precision": (self.precision, task.options.precision),
        }
        for what, (saved, wanted) in checks.items():
            if saved != wanted:
                return what
        return None


def _json_roundtrip(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def run_fold(task: FoldTask, images: np.ndarray, labels: np.ndarray, num_classes: int,
             callbacks: Callbacks | None = None) -> FoldResult:
    """Train task.recipe on the fold's training indices, validating on its held-out indices every epoch."""
    f = task.fold
    train = (images[f.train], labels[f.train])
    held_out = (images[f.held_out], labels[f.held_out])
    result = fit(task.recipe, train, held_out, task.options, num_classes=num_classes, callbacks=callbacks)
    history = [h.as_dict() for h in result.history]
    last = result.history[-1]
    return FoldResult(
        recipe=task.recipe.name,
        repeat=f.repeat,
        fold=f.index,
        folds=f.folds,
        score=float(last.val_acc),
        loss=float(last.val_loss),
        seconds=result.seconds,
        history=history,
        fingerprint=f.fingerprint,
        data_checksum=task.data_checksum,
        limit=task.limit,
        seed=task.options.seed,
        precision=task.options.precision,
        recipe_config=_json_roundtrip(task.recipe.to_dict()),
        train_size=len(f.train),
        held_out_size=len(f.held_out),
        device=str(result.device),
        autocast=result.precision,
        threads=result.threads,
        finished=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


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
                "recipe": _json_roundtrip(recipe.to_dict()),
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


def safe_name(name: str) -> str:
    """A recipe name usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def fold_path(out: Path, recipe: str, fold: Fold) -> Path:
    """OUT/folds/<recipe>/r<repeat>-f<fold>.json."""
    return Path(out) / FOLDS_DIR / safe_name(recipe) / f"{fold.key}.json"


def task_threads(config: CVConfig) -> int:
    """Intra-op threads per fold: --threads, else the available cores divided among the jobs (at least 1)."""
    return config.threads or max(1, available_cores() // max(1, config.jobs))


def executor_name(config: CVConfig) -> str:
    """`ray`, `processes` or `sequential`."""
    if config.ray or config.ray_address:
        return "ray"
    return "processes" if config.jobs > 1 else "sequential"


def plan(config: CVConfig, labels: np.ndarray, data_checksum: str) -> tuple[list[Fold], list[FoldTask]]:
    """The folds, and one task per (recipe, fold), recipe by recipe."""
    names = [r.name for r in config.recipes]
    if not names:
        raise UsageError("name at least one recipe to cross-validate")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"recipe {', '.join(duplicates)} given twice; name each recipe once")
    if config.jobs < 1:
        raise UsageError(f"--jobs {config.jobs}: needs at least 1")
    if config.precision != "recipe":
        resolve_precision(config.precision, torch.device("cpu"))  # an unknown name fails here, not in every task
    if not config.ray_address:
        resolve_device(config.device)  # a remote cluster's workers may have devices this machine lacks
    folds = make_folds(labels, config.folds, config.seed, config.stratified, config.repeats)
    threads = task_threads(config)
    tasks = [
        FoldTask(
            recipe=recipe,
            fold=fold,
            options=TrainOptions(seed=fold_seed(config.seed, fold.repeat, fold.index), device=config.device,
                                 precision=config.precision, threads=threads),
            data_checksum=data_checksum,
            limit=config.limit,
        )
        for recipe in config.recipes
        for fold in folds
    ]
    return folds, tasks


def read_finished(path: Path, task: FoldTask) -> tuple[FoldResult | None, str | None]:
    """The fold result saved at `path` if it stands for `task`; else None and why (None when there is no file)."""
    try:
        result = FoldResult.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, f"{path}: unreadable or incomplete; retraining the fold"
    reason = result.mismatch(task)
    if reason:
        return None, f"{path}: made with {reason}; retraining the fold"
    result.reused = True
    return result, None


def clean_temp_files(out: Path) -> int:
    """Delete temporary files an interrupted run left in OUT (fileio's atomic writes name them `.<name>.*`)."""
    removed = 0
    for pattern in (f"{FOLDS_DIR}/*/.*.tmp", ".*.tmp", ".*.png"):
        for tmp in Path(out).glob(pattern):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def run_cv(config: CVConfig, data: CVData, progress: CVProgress | None = None) -> CVResult:
    """Cross-validate every recipe on the same folds, resuming from OUT; write cv.json, figures and report.md."""
    from fmnist.cv.report import write_cv_report
    from fmnist.runs import subset

    progress = progress or CVProgress()
    images, labels = data.images, data.labels
    if config.limit:
        images, labels = subset(images, labels, config.limit, config.seed)
    checksum = data.digest
    folds, tasks = plan(config, labels, checksum)
    out = Path(config.out)
    clean_temp_files(out)

    done: dict[tuple[str, str], FoldResult] = {}
    pending: list[FoldTask] = []
    for task in tasks:
        result, why = read_finished(fold_path(out, task.recipe.name, task.fold), task)
        if why:
            progress.note(why)
        if result is None:
            pending.append(task)
        else:
            done[(task.recipe.name, task.fold.key)] = result
    threads = task_threads(config)
    executor = executor_name(config)
    progress.start(len(pending), len(done), executor, threads)
    by_key = {f.key: f for f in folds}
    for result in list(done.values()):
        progress.fold_done(result, by_key[result.key])

    for result in execute(pending, images, labels, data.num_classes, config, progress):
        fold = by_key[result.key]
        write_json(fold_path(out, result.recipe, fold), result.to_dict())
        done[(result.recipe, result.key)] = result
        progress.fold_done(result, fold)

    results = {r.name: [done[(r.name, f.key)] for f in folds] for r in config.recipes}
    scores = {name: [x.score for x in rs] for name, rs in results.items()}
    names = list(scores)
    cv = CVResult(
        config=config,
        data={"name": data.name, "checksum": checksum, "images": len(labels), "limit": config.limit},
        folds=folds,
        results=results,
        summaries={name: summarize(s) for name, s in scores.items()},
        # Every pair, the later-named recipe against the earlier one: "is the variant better than the reference?"
        comparisons=[
            compare(names[j], scores[names[j]], names[i], scores[names[i]], config.folds, config.repeats)
            for i in range(len(names))
            for j in range(i + 1, len(names))
        ],
        executor=executor,
        threads=threads,
        trained=len(pending),
        reused=len(tasks) - len(pending),
    )
    cv.figures = write_cv_report(out, cv.to_dict(histories=True))
    write_json(out / CV_JSON, cv.to_dict(histories=True))
    return cv


def execute(pending: list[FoldTask], images: np.ndarray, labels: np.ndarray, num_classes: int, config: CVConfig,
            progress: CVProgress) -> Iterator[FoldResult]:
    """Run the tasks with the configured executor, yielding each result as it finishes."""
    if not pending:
        return
    if config.ray or config.ray_address:
        yield from run_ray(pending, images, labels, num_classes, config)
    elif config.jobs > 1 and len(pending) > 1:
        yield from run_processes(pending, images, labels, num_classes, min(config.jobs, len(pending)))
    else:
        for task in pending:
            yield run_fold(task, images, labels, num_classes, progress.fold_callbacks(task))


# A process-pool worker's copy of the arrays, sent once per worker by the initializer rather than once per task.
_WORKER_DATA: dict[str, Any] = {}


def _init_worker(images: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    _WORKER_DATA.update(images=images, labels=labels, num_classes=num_classes)


def _worker_fold(task: FoldTask) -> FoldResult:
    return run_fold(task, _WORKER_DATA["images"], _WORKER_DATA["labels"], _WORKER_DATA["num_classes"])


def run_processes(pending: list[FoldTask], images: np.ndarray, labels: np.ndarray, num_classes: int,
                  workers: int) -> Iterator[FoldResult]:
    """Run the tasks in `workers` fresh processes, yielding results as they finish."""
    # spawn, not fork: forking a process whose torch thread pools are running can deadlock the child.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(images, labels, num_classes))
    try:
        futures = [pool.submit(_worker_fold, task) for task in pending]
        for future in as_completed(futures):
            yield future.result()
    finally:
        # On an error or interrupt, drop the queued folds; finished ones are already on disk.
        pool.shutdown(wait=True, cancel_futures=True)


def import_ray():
    """The ray module, or a UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("Ray is not installed; pip install 'fmnist[ray]'") from None
    return ray


def _ray_fold(task: FoldTask, images: np.ndarray, labels: np.ndarray, num_classes: int) -> FoldResult:
    # Ray resolves the ObjectRef arguments to the arrays on the worker: the cluster needs no dataset files.
    return run_fold(task, images, labels, num_classes)


def _gpus_per_task(config: CVConfig) -> float:
    """A share of a GPU per task when the folds train on CUDA, so Ray exposes the GPU to the task."""
    device = config.device or "auto"
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return 1.0 / max(1, config.jobs) if wants_cuda else 0.0


def run_ray(pending: list[FoldTask], images: np.ndarray, labels: np.ndarray, num_classes: int,
            config: CVConfig) -> Iterator[FoldResult]:
    """Run the tasks on Ray (joining config.ray_address, or starting/joining a local instance)."""
    ray = import_ray()
    threads = pending[0].options.threads or 1
    started = False
    if not ray.is_initialized():
        start_ray(ray, config, threads)
        started = True
    refs: list = []
    try:
        gpus = _gpus_per_task(config)
        cluster = ray.cluster_resources()
        # A task asking for more than the cluster has would wait forever: say so instead.
        if gpus and cluster.get("GPU", 0) < gpus:
            raise UsageError(f"--device {config.device}: the Ray cluster has no GPU; use --device cpu, or a cluster with GPUs")
        if cluster.get("CPU", 0) < threads:
            raise UsageError(f"--threads {threads}: the Ray cluster has only {cluster.get('CPU', 0):g} CPUs; ask for fewer threads")
        remote = ray.remote(_ray_fold).options(num_cpus=threads, num_gpus=gpus)
        images_ref, labels_ref = ray.put(images), ray.put(labels)
        refs = [remote.remote(task, images_ref, labels_ref, num_classes) for task in pending]
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                # A user-facing error inside a task (say, a device it lacks) reads as itself, not as a Ray traceback.
                if isinstance(e.cause, FmnistError):
                    raise e.cause from None
                raise
            yield result
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def start_ray(ray: Any, config: CVConfig, threads: int) -> None:
    """ray.init for --ray-address (join) or --ray (a local instance with a bounded CPU count)."""
    quiet = {"include_dashboard": False, "log_to_driver": False}
    if config.ray_address:
        try:
            ray.init(address=config.ray_address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise FmnistError(
                f"could not join the Ray cluster at {config.ray_address}: {e}; check the address (`ray status` on the head node)"
            ) from None
        return
    # Enough CPUs for `jobs` folds at `threads` each, but not more than this machine has.
    num_cpus = max(threads, min(available_cores(), config.jobs * threads))
    try:
        ray.init(num_cpus=num_cpus, **quiet)
    except ValueError:
        # ray.init() joined a Ray instance already running here, which fixes its own resources.
        ray.init(**quiet)
