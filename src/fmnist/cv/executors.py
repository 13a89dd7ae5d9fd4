"""Where cross-validation folds train: in this process, in a pool of fresh processes, or as Ray tasks.

A fold's training seed depends on (seed, repeat, fold) only, and each fold sets its thread count explicitly
before it trains (the worker process is the edge that owns that setting), so the three executors give the same
scores (CPU results can depend on the number of intra-op threads, so compare executors at the same --threads).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np
import torch

from fmnist.cv.results import CVConfig, CVProgress, FoldResult, FoldTask, json_roundtrip
from fmnist.errors import DataError, FmnistError, UsageError
from fmnist.runtime import (
    available_cores,
    check_ray_address,
    init_pool_worker,
    interrupt_workers,
    let_interrupts,
    set_threads,
)
from fmnist.train.loop import Callbacks, TrainData, TrainingDiverged, fit


def run_fold(task: FoldTask, images: np.ndarray, labels: np.ndarray, num_classes: int,
             callbacks: Callbacks | None = None) -> FoldResult:
    """Train task.recipe on the fold's training indices, validating on its held-out indices every epoch."""
    f = task.fold
    train = (images[f.train], labels[f.train])
    held_out = (images[f.held_out], labels[f.held_out])
    set_threads(task.options.threads)
    data = TrainData(train, held_out, num_classes)
    checkpoint = Path(task.checkpoint) if task.checkpoint else None
    tag = {"fold": f.fingerprint, "data": task.data_checksum}
    try:
        # An interrupted fold continues from its checkpoint; one of another run is trained from the start.
        result = fit(task.recipe, data, task.options, callbacks=callbacks, checkpoint=checkpoint,
                     resume=checkpoint is not None and checkpoint.is_file(), tag=tag)
    except DataError:
        result = fit(task.recipe, data, task.options, callbacks=callbacks, checkpoint=checkpoint, tag=tag)
    except TrainingDiverged as e:  # resuming would diverge again: the fold starts over once the recipe is changed
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        raise TrainingDiverged(f"{task.recipe.name} {f.label}: {e}; this recipe does not train on these folds as "
                               "it is (`fmnist train` takes --lr and --set to find settings that do)") from None
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
        recipe_config=json_roundtrip(task.recipe.to_dict()),
        train_size=len(f.train),
        held_out_size=len(f.held_out),
        device=str(result.device),
        autocast=result.precision,
        threads=result.threads,
        finished=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


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


def _init_worker(images: np.ndarray, labels: np.ndarray, num_classes: int, parent: int) -> None:
    init_pool_worker(parent)
    _WORKER_DATA.update(images=images, labels=labels, num_classes=num_classes)


def _worker_fold(task: FoldTask) -> FoldResult:
    with let_interrupts():  # and not in the pool's queue code
        return run_fold(task, _WORKER_DATA["images"], _WORKER_DATA["labels"], _WORKER_DATA["num_classes"])


def run_processes(pending: list[FoldTask], images: np.ndarray, labels: np.ndarray, num_classes: int,
                  workers: int) -> Iterator[FoldResult]:
    """Run the tasks in `workers` fresh processes, yielding results as they finish."""
    # spawn, not fork: forking a process whose torch thread pools are running can deadlock the child.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(images, labels, num_classes, os.getpid()))
    try:
        futures = [pool.submit(_worker_fold, task) for task in pending]
        for future in as_completed(futures):
            yield future.result()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM to this process alone: the running folds stop too
        interrupt_workers(pool)
        raise
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
        check_ray_address(config.ray_address)
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
