"""The search itself: an Optuna study of recipe settings, scored on the held-out split of the training set.

Each trial trains the recipe with the trial's settings on the training split minus a held-out share
(`fmnist.data.splits.holdout_split`, the recipe's `val_fraction`, seed 0) and scores the held-out accuracy of the
last epoch; the test split is never loaded. After every epoch the trial reports its held-out accuracy, and the
median pruner stops a trial that falls below the median of earlier trials at the same epoch. The study lives in
`runs/sweeps/NAME/study.db` (SQLite) unless `storage` names another database: running the same sweep again
continues it up to `trials`. Trials run in this process, in `jobs` processes sharing the study, or as Ray tasks.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fmnist.config import TrainOptions
from fmnist.data import Dataset, Split, load_split
from fmnist.data.registry import FOLDER
from fmnist.data.splits import holdout_split, subset
from fmnist.errors import UsageError
from fmnist.imaging.folder import load_folder
from fmnist.paths import safe_name
from fmnist.recipes import get_recipe
from fmnist.recipes.overrides import override
from fmnist.runtime import (
    available_cores,
    check_ray_address,
    hold_interrupts,
    init_pool_worker,
    interrupt_pending,
    interrupt_workers,
    let_interrupts,
    resolve_device,
    set_threads,
    uninterrupted,
)
from fmnist.sweep.space import Param
from fmnist.train.loop import Callbacks, TrainData, TrainingDiverged, TrainingInterrupted, fit
from fmnist.train.stats import EpochStats

INSTALL = "pip install 'fmnist[sweep]'"
FINISHED = ("COMPLETE", "PRUNED")
PROGRESS = 1000  # a trial's reports are steps of its run in thousandths (`progress_step`)
WARMUP = PROGRESS // 4 + 1  # no trial is pruned until more than a quarter of it is done
HEARTBEAT_S, STALE_S = 5, 20  # a running trial's heartbeat, and the silence after which it is taken for dead


@dataclass(frozen=True)
class SweepConfig:
    """What to search and how; `identity()` must match when a stored study is continued."""

    recipe: str
    params: tuple[Param, ...]
    trials: int = 20
    name: str = ""  # default: the recipe's name
    dataset: str = "fashion-mnist"
    data_dir: Path | None = None
    limit: int | None = None  # training images (before the held-out share is taken)
    seed: int = 0
    precision: str = "recipe"
    device: str = "auto"
    jobs: int = 1  # processes on this machine (or Ray tasks at once)
    ray: bool = False
    ray_address: str | None = None
    storage: str | None = None  # an Optuna storage URL; default SQLite in the sweep's directory
    root: Path = field(default=Path("runs/sweeps"))

    def __post_init__(self) -> None:
        if not self.params:
            raise UsageError("a sweep needs at least one --param (e.g. --param lr=0.05:0.4:log)")
        if len({p.key for p in self.params}) != len(self.params):
            raise UsageError("each --param may name a setting once")
        if not 1 <= self.trials <= 100_000:
            raise UsageError(f"--trials must be between 1 and 100000, got {self.trials}")
        if not 1 <= self.jobs <= 1024:
            raise UsageError(f"--jobs must be between 1 and 1024, got {self.jobs}")
        if self.limit is not None and self.limit < 20:
            raise UsageError(f"--limit must be at least 20 images (some are held out for scoring), got {self.limit}")
        # --seed, --precision and --device fail here, as `fmnist train` fails on them, before a study is stored.
        TrainOptions(seed=self.seed, device=self.device, precision=self.precision)
        recipe = get_recipe(self.recipe)
        for p in self.params:  # a value the recipe refuses fails here, before a study is stored
            for value in p.extremes():
                try:
                    override(recipe, p.key, value)
                except UsageError as e:
                    raise UsageError(f"--param {p.describe()}: {value!r} is refused: {e}") from None

    @property
    def study_name(self) -> str:
        return self.name or self.recipe

    @property
    def directory(self) -> Path:
        return sweep_dir(self.study_name, self.root)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.directory / 'study.db').resolve()}"

    def identity(self) -> dict[str, Any]:
        """What makes trials comparable: a stored study with other values is not continued."""
        identity = {"recipe": self.recipe, "params": [p.describe() for p in self.params], "dataset": self.dataset,
                    "limit": self.limit, "seed": self.seed, "precision": self.precision}
        if self.dataset == FOLDER:  # which image folder (a registered dataset is one whatever its copy)
            identity["data_dir"] = str(Path(self.data_dir).expanduser().resolve()) if self.data_dir else None
        return identity


def sweep_dir(name: str, root: Path = Path("runs/sweeps")) -> Path:
    return Path(root) / safe_name(name)


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise UsageError(f"fmnist sweep needs Optuna, which is not installed; install it with: {INSTALL}") from None
    # ERROR: Optuna's warning for a failed trial prints the exception's traceback; the exception itself still
    # reaches the caller (the CLI prints its message, a Ctrl-C says how to continue).
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _sampler(optuna, cfg: SweepConfig, done: int, worker: int | None = None):
    """TPE seeded by the sweep's seed, the trials stored so far and the worker: a continued sweep, and each
    worker of one, draws new points rather than the ones its first run began with."""
    seed = (cfg.seed + done + (0 if worker is None else 1000 * (worker + 1))) % 2**32  # what numpy takes
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, cfg.trials // 3)))


def open_study(cfg: SweepConfig, create: bool = True):
    """The sweep's study (created, or loaded when it exists), checked against the sweep's identity."""
    optuna = optuna_module()
    try:
        cfg.directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # --root names a file, a folder this user may not write
        raise UsageError(f"cannot make the sweep's folder {cfg.directory} ({e.strerror or e}); pass another --root "
                         "(or --name)") from None
    # A trial is compared with 3 others or more at the same step (trials of other lengths share few steps).
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=WARMUP, n_min_trials=3)
    # A running trial beats every HEARTBEAT_S; one whose process was killed (kill -9, a lost machine) stops beating
    # and is marked failed STALE_S later, when a trial starts or the study is opened again (it showed as running
    # for good).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
        storage = optuna.storages.RDBStorage(cfg.storage_url, heartbeat_interval=HEARTBEAT_S, grace_period=STALE_S)
        study = optuna.create_study(study_name=cfg.study_name, storage=storage, direction="maximize",
                                    sampler=_sampler(optuna, cfg, 0), pruner=pruner, load_if_exists=True)
        optuna.storages.fail_stale_trials(study)
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", cfg.identity())
    elif stored != cfg.identity():
        now = cfg.identity()
        changed = "; ".join(f"{k} {stored.get(k)!r}, not {now[k]!r}" for k in sorted(now) if stored.get(k) != now[k])
        raise UsageError(f"the sweep {cfg.study_name!r} in {cfg.directory} was run with other settings ({changed}); "
                         "continue it with the same settings, or start another with --name")
    _check_choices(study, cfg)
    if study.trials:
        study.sampler = _sampler(optuna, cfg, len(study.trials))
    return study


def _check_choices(study, cfg: SweepConfig) -> None:
    """A UsageError when the stored trials drew from other choices than these parameters' (a study made before
    true/false were read as booleans holds the strings "True" and "False", which describe alike)."""
    for p in cfg.params:
        if p.kind != "choice":
            continue
        for t in study.trials:
            stored = t.distributions.get(p.key)
            if stored is not None and tuple(stored.choices) != tuple(p.choices):
                raise UsageError(f"the sweep {cfg.study_name!r} in {cfg.directory} drew {p.key} from "
                                 f"{list(stored.choices)!r}, not {list(p.choices)!r}; start another with --name")


def finished(study) -> int:
    return sum(t.state.name in FINISHED for t in study.trials)


class StudyStorageError(Exception):
    """The study's database could not be read or written (a damaged file, a full disk); the message is the cause."""


def run_sweep(cfg: SweepConfig, note: Callable[[str], None] = lambda _: None) -> Any:
    """Run the sweep until `cfg.trials` trials have finished (continuing a stored study); returns the study.
    `note` hears of the image folder's files the trials skip. StudyStorageError when the study's database fails."""
    optuna = optuna_module()
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        return _run_sweep(cfg, note)
    except ArgumentError as e:  # --storage names no database SQLAlchemy can open (no such dialect, a bad URL)
        if cfg.storage is None:
            raise StudyStorageError(_storage_problem(e)) from e
        raise UsageError(f"--storage {cfg.storage!r} is not a database URL SQLAlchemy can open ({e}); use one such "
                         "as sqlite:////shared/dir/study.db or postgresql://user@host/db") from None
    except ImportError as e:  # --storage postgresql://... without its driver (psycopg2), mysql://... without its
        if cfg.storage is None:
            raise
        raise UsageError(f"--storage {cfg.storage!r} needs a database driver that is not installed ({e}); install "
                         "it (e.g. pip install psycopg2-binary for postgresql://) or use sqlite:///PATH") from None
    except (SQLAlchemyError, sqlite3.Error, optuna.exceptions.StorageInternalError) as e:
        raise StudyStorageError(_storage_problem(e)) from e


def _storage_problem(error: BaseException) -> str:
    """The database's own words (sqlite's "file is not a database", "database or disk is full") from the chain
    of exceptions the storage layers raised over it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _run_sweep(cfg: SweepConfig, note: Callable[[str], None]) -> Any:
    # What the trials need fails before a new study is stored; a stored one that needs no more trials is only read
    # (its report, on a machine without the data).
    stored = _stored(cfg)
    train = None if stored else _check_can_run(cfg)
    study = open_study(cfg)
    remaining = cfg.trials - finished(study)
    if remaining <= 0:
        return study
    if stored:
        train = _check_can_run(cfg)
    for _, why in getattr(train, "skipped", ()):  # an image folder's unreadable files, as `train` lists them
        note(f"skipped: {why}")
    workers = min(cfg.jobs, remaining)
    threads = max(1, available_cores() // workers)  # on Ray: the CPUs each task asks for
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    if cfg.ray:
        _on_ray(cfg, shares, threads)
    elif workers == 1:
        optimize(cfg, shares[0], threads, study, train=train)  # the data read once
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_pool_worker,
                                 initargs=(os.getpid(),)) as pool:
            try:
                for f in [pool.submit(optimize, cfg, n, threads, None, i) for i, n in enumerate(shares)]:
                    f.result()
            except KeyboardInterrupt:  # SIGTERM to this process alone: the workers' trials stop too
                interrupt_workers(pool)
                raise
    return open_study(cfg)


def _stored(cfg: SweepConfig) -> bool:
    """Whether the sweep's study exists already: its SQLite file, or its name in the --storage database."""
    if cfg.storage is None:
        return (cfg.directory / "study.db").exists()
    return cfg.study_name in optuna_module().get_all_study_names(storage=cfg.storage_url)


def _check_can_run(cfg: SweepConfig) -> Dataset | Split | None:
    """A UsageError or DataError when trials cannot run: here no such device or no data, on a cluster no answer.
    Returns what the trials here train on (None for a cluster's)."""
    if cfg.ray_address is not None:
        check_ray_address(cfg.ray_address)
        return None
    resolve_device(cfg.device)
    return _train_data(cfg)


def _on_ray(cfg: SweepConfig, shares: list[int], threads: int) -> None:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed; install it with: pip install 'fmnist[ray]'") from None
    # On a cluster (--ray-address) every node must reach the study: pass --storage with a database URL they share
    # (or keep the SQLite file on a shared file system). A local Ray shares this machine's file.
    try:
        ray.init(address=cfg.ray_address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise UsageError(f"could not start or join Ray{f' at {cfg.ray_address}' if cfg.ray_address else ''}: {e}; "
                         "check the address (`ray status` on the head node)") from None
    task = ray.remote(num_cpus=threads)(optimize)
    ray.get([task.remote(cfg, n, threads, None, i) for i, n in enumerate(shares)])


class _Pruning(Callbacks):
    """Reports each epoch's held-out accuracy to the trial; asks training to stop when the pruner says so.

    A report's step is how far through its run the trial is (in thousandths), not the epoch: the median pruner compares
    trials at the same step, and epoch 2 of a 4-epoch one-cycle run (at its peak learning rate) is no match for the
    annealed end of a 2-epoch one, so a sweep over `epochs` pruned the longer trials for being longer. Trials
    of other lengths meet where their steps coincide (at the end at least). Epochs before `first` are not reported:
    a recipe with progressive resizing trains its early epochs on smaller images than the held-out ones, and their
    held-out accuracy (57-72% after the first of `fast`'s 5 epochs, in a sweep whose trials ended at 92.7-93.1%)
    says little about how the trial will end. A prune at the last epoch saves nothing and is not taken: the trial
    finished, and its result counts."""

    def __init__(self, trial, epochs: int, first: int = 1) -> None:
        self.trial, self.epochs, self.pruned, self.first = trial, epochs, False, first
        self.seconds = 0.0  # the epochs' training time so far: a pruned trial's table row and figure point

    def epoch_end(self, stats: EpochStats) -> None:
        self.seconds += stats.seconds
        if stats.epoch >= self.first and stats.val_acc is not None and math.isfinite(stats.val_acc):
            with uninterrupted():  # writes to the study
                self.trial.report(stats.val_acc, progress_step(stats.epoch, self.epochs))
                self.trial.set_user_attr("epochs_run", stats.epoch)
                self.pruned = stats.epoch < self.epochs and self.trial.should_prune()

    def should_stop(self) -> bool:
        return self.pruned


def progress_step(epoch: int, epochs: int) -> int:
    """The step a trial reports after `epoch` of `epochs`: how far through the run, in thousandths."""
    return round(PROGRESS * epoch / epochs)


def optimize(cfg: SweepConfig, n_trials: int, threads: int, study=None, worker: int = 0,
             train: Dataset | Split | None = None) -> None:
    """Run up to `n_trials` trials of the sweep here (a process, or a Ray task, of its own when `study` is None),
    on `train` when it was read already (see `_train_data`)."""
    optuna = optuna_module()
    set_threads(threads)
    if study is None:
        study = open_study(cfg)
        study.sampler = _sampler(optuna, cfg, len(study.trials), worker)  # workers draw apart
    data, recipe = _data(cfg, train if train is not None else _train_data(cfg))

    def objective(trial) -> float:
        trial_recipe = recipe
        for p in cfg.params:
            trial_recipe = override(trial_recipe, p.key, p.suggest(trial))
        options = TrainOptions(seed=cfg.seed, device=cfg.device, precision=cfg.precision, threads=threads)
        callbacks = _Pruning(trial, trial_recipe.epochs,
                             first=trial_recipe.augment.small_epochs(trial_recipe.epochs) + 1)
        try:
            with let_interrupts():  # the training may be cut short; the trial's records are not (hold_interrupts)
                result = fit(trial_recipe, data, options, callbacks)
        except TrainingInterrupted:
            trial.set_user_attr("seconds", callbacks.seconds)
            raise optuna.TrialPruned() from None
        except TrainingDiverged as e:  # settings that do not train are a result of the search, not its failure
            trial.set_user_attr("diverged", str(e))
            trial.set_user_attr("seconds", callbacks.seconds)
            raise optuna.TrialPruned() from None
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("val_history", [h.val_acc for h in result.history])
        trial.set_user_attr("pid", os.getpid())
        return float(result.history[-1].val_acc)

    done = optuna.study.MaxTrialsCallback(cfg.trials, states=(optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED))

    def stop_when_interrupted(study, trial) -> None:  # an interrupt held while a trial's end was recorded
        if interrupt_pending():
            study.stop()

    with hold_interrupts():
        study.optimize(objective, n_trials=n_trials, callbacks=[done, stop_when_interrupted], catch=())


def _data(cfg: SweepConfig, data: Dataset | Split):
    """The training split (a seeded subset with --limit) less its held-out share; the test split is not read."""
    recipe = dataclasses.replace(get_recipe(cfg.recipe), validation="holdout")
    train = data.train if isinstance(data, Dataset) else data
    images, labels = (train.images, train.labels) if cfg.limit is None else subset(train.images, train.labels,
                                                                                   cfg.limit, cfg.seed)
    tr, va = holdout_split(labels, recipe.val_fraction, seed=0)
    return TrainData((images[tr], labels[tr]), (images[va], labels[va]), num_classes=len(train.classes)), recipe


def _train_data(cfg: SweepConfig) -> Dataset | Split:
    """The dataset's training split; of an image folder (--dataset folder), the folder read whole, whose `train`
    is the part `fmnist train --seed` trains on (its own held-out test part is left out) and `skipped` its
    unreadable files."""
    if cfg.dataset == FOLDER:
        return load_folder(cfg.data_dir, seed=cfg.seed)
    return load_split("train", cfg.dataset, data_dir=cfg.data_dir)
