"""Cross-validation runs: one task per (recipe, fold), run in-process, in a process pool, or as Ray tasks.

The driver alone writes files. Each finished fold becomes OUT/folds/<recipe>/r<repeat>-f<fold>.json,
written atomically once the fold has finished, so an interrupted fold leaves nothing behind (at most a
temporary file, which is ignored and cleaned). A rerun with the same OUT reads a fold back instead of
retraining it when the file records the same recipe, data, limit, fold and training seed; an OUT
holding a cross-validation made with other options is refused (replaced whole with --overwrite). At the end
cv.json, the figures and report.md are written from all the folds.

A fold's training seed depends on (seed, repeat, fold) only, and its thread count is set explicitly, so
the in-process, process-pool and Ray executors give the same scores (CPU results can depend on the number
of intra-op threads, so compare executors at the same --threads).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from fmnist.config import TrainOptions
from fmnist.cv.executors import execute
from fmnist.cv.folds import Fold, fold_seed, make_folds
from fmnist.cv.results import CVConfig, CVData, CVProgress, CVResult, FoldResult, FoldTask
from fmnist.cv.stats import compare, summarize
from fmnist.cv.store import CV_JSON, checkpoint_path, clean_temp_files, fold_path, prepare_out, read_finished
from fmnist.data.splits import subset
from fmnist.errors import UsageError
from fmnist.fileio import check_writable, write_json
from fmnist.reports.cv import write_cv_report
from fmnist.rundir import drop_previous
from fmnist.runlock import exclusive
from fmnist.runtime import available_cores, resolve_device, resolve_precision


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
            # Ray tasks may run on other machines, which cannot reach OUT: they restart a broken fold instead.
            checkpoint=None if executor_name(config) == "ray" else str(checkpoint_path(config.out, recipe.name, fold)),
        )
        for recipe in config.recipes
        for fold in folds
    ]
    return folds, tasks


TOO_FEW = 30  # held-out images in a fold below which the figures are noted as saying little


def run_cv(config: CVConfig, data: CVData, progress: CVProgress | None = None, overwrite: bool = False) -> CVResult:
    """Cross-validate every recipe on the same folds, resuming from OUT; write cv.json, figures and report.md.

    OUT must be empty, absent or this same cross-validation (fmnist.cv.store.prepare_out); `overwrite` replaces
    a cross-validation made with other options. A second process working in the same OUT is refused."""
    with exclusive(Path(config.out)):
        return _run_cv(config, data, progress, overwrite)


def _run_cv(config: CVConfig, data: CVData, progress: CVProgress | None, overwrite: bool) -> CVResult:
    progress = progress or CVProgress()
    images, labels = data.images, data.labels
    if config.limit and config.limit >= len(labels):
        progress.note(f"--limit {config.limit} is not below the {len(labels):,} training images: all of them are used")
        config = dataclasses.replace(config, limit=None)
    if config.limit:
        images, labels = subset(images, labels, config.limit, config.seed)
    checksum = data.digest
    folds, tasks = plan(config, labels, checksum)
    out = Path(config.out)
    prepare_out(out, tasks, overwrite)
    check_writable(out)  # before any fold trains: a read-only --out (or one not ours) is said now
    clean_temp_files(out)
    smallest = min(len(f.held_out) for f in folds)
    if smallest < TOO_FEW:
        progress.note(f"a held-out fold has only {smallest} image{'s' if smallest != 1 else ''}: its score moves in "
                      f"steps of {100 / smallest:.3g} points, so these scores say little; use more images or fewer folds")

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
        checkpoint_path(out, result.recipe, fold).unlink(missing_ok=True)
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
        summaries={name: summarize(s, bounds=(0.0, 1.0)) for name, s in scores.items()},  # accuracies
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
    drop_previous(out)  # the cross-validation --overwrite replaced, now that this one is written
    return cv
