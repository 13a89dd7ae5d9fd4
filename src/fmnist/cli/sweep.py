"""`fmnist sweep RECIPE --param ... --trials N`: hyperparameter search on the held-out split (never the test set)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from fmnist.cli.common import (
    DataDirOption,
    DatasetOption,
    DeviceOption,
    JsonOption,
    complete_recipe,
    err,
    out,
    print_json,
    settings,
)


def sweep(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Argument(help="The recipe to tune (see `fmnist models`).",
                                                    autocompletion=complete_recipe)],
    param: Annotated[Optional[list[str]], typer.Option("--param", help=(
        "A setting and its range: lr=0.05:0.4:log, weight_decay=1e-5:1e-3:log, epochs=8,10,12, "
        "batch_size=128:512:int, augment.erase=0:0.5. Repeat for each. Default: the learning rate, from half "
        "to twice the recipe's, on a log scale."), show_default=False)] = None,
    trials: Annotated[int, typer.Option(help="Trials in the sweep in all (a stored sweep continues up to it).")] = 20,
    name: Annotated[Optional[str], typer.Option(help="Sweep name: runs/sweeps/NAME/ (default: the recipe).",
                                                show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use N training images (a tenth held out for scoring).",
                                                 show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the trials' training and of the sampler.")] = 0,
    precision: Annotated[str, typer.Option(help="recipe, auto, bf16 or fp32.")] = "recipe",
    jobs: Annotated[int, typer.Option(help="Trials at once: processes here, or Ray tasks with --ray.")] = 1,
    ray: Annotated[bool, typer.Option("--ray", help="Run trials as Ray tasks (a local Ray, or --ray-address).")] = False,
    ray_address: Annotated[Optional[str], typer.Option(help="The Ray cluster to join (implies --ray).",
                                                       show_default=False)] = None,
    storage: Annotated[Optional[str], typer.Option(help=(
        "Optuna storage URL shared by every worker (default: runs/sweeps/NAME/study.db, SQLite)."),
        show_default=False)] = None,
    root: Annotated[Path, typer.Option("--root", help="Where sweeps live.")] = Path("runs/sweeps"),
    data_dir: DataDirOption = None,
    dataset: DatasetOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search a recipe's settings with Optuna (TPE sampler, median pruner on the per-epoch held-out accuracy).

    Every trial trains on the training split less a held-out tenth and is scored there; the test split is never
    read. The study is stored in runs/sweeps/NAME/study.db, so rerunning the command continues it. Prints the trials,
    the best settings as an `fmnist train` command, and writes trials.json and sweep.png beside the study.
    """
    from fmnist.cli.progress import interrupt_exit_code, sigterm_as_ctrl_c
    from fmnist.errors import DataError
    from fmnist.runtime import configure_process
    from fmnist.sweep import SweepConfig, parse_param, run_sweep
    from fmnist.sweep.space import labels
    from fmnist.sweep.report import best_command, trial_rows, write_outputs
    from fmnist.sweep.study import StudyStorageError, finished

    s = settings(ctx, data_dir=data_dir, dataset=dataset, device=device)
    if not param:
        from fmnist.recipes import get_recipe

        lr = get_recipe(recipe).optimizer.lr
        param = [f"lr={lr / 2:g}:{lr * 2:g}:log"]
    cfg = SweepConfig(recipe=recipe, params=tuple(parse_param(p) for p in param), trials=trials, name=name or "",
                      dataset=s.dataset, data_dir=s.data_dir, limit=limit, seed=seed, precision=precision,
                      device=s.device, jobs=jobs, ray=ray or ray_address is not None, ray_address=ray_address,
                      storage=storage, root=root)
    configure_process()
    err.print(f"sweep {cfg.study_name}: " + "; ".join(p.describe() for p in cfg.params)
              + f"; {cfg.trials} trial{'s' if cfg.trials != 1 else ''} in {cfg.directory}", markup=False, soft_wrap=True)
    try:
        with sigterm_as_ctrl_c():
            study = run_sweep(cfg, note=lambda line: err.print(line, markup=False, soft_wrap=True))
    except StudyStorageError as e:
        if cfg.storage:
            raise DataError(f"the sweep's study at --storage {cfg.storage} cannot be read or written ({e}); check "
                            "that the database exists and this machine may reach and write it") from None
        raise DataError(f"the sweep's study in {cfg.directory} cannot be read or written ({e}); if the disk is full, "
                        "free some space and run the same command again; if study.db is damaged, move it aside (its "
                        "trials are lost) or start another sweep with --name") from None
    except KeyboardInterrupt:
        from fmnist.train.loop import TrainingInterrupted

        error = TrainingInterrupted(f"interrupted: the finished trials are kept in {cfg.directory}; the trial that "
                                    "was running is marked failed. Run the same command again to continue the sweep", None)
        error.exit_code = interrupt_exit_code()
        raise error from None
    rows = trial_rows(study, cfg)
    held = finished(study)
    if held > cfg.trials:
        err.print(f"note: the sweep holds {held} finished trials, more than --trials {cfg.trials}; pass a larger "
                  "--trials to run more", markup=False, soft_wrap=True)
    paths = write_outputs(study, cfg)
    command = best_command(study, cfg)
    if as_json:
        print_json({"sweep": cfg.study_name, "directory": str(cfg.directory), "trials": rows, "best_command": command,
                    "files": {k: str(v) for k, v in paths.items()}})
        return
    columns = labels(cfg.params)
    table = Table("trial", "state", "held-out %", "epochs run", "s", *columns.values())
    for r in rows:
        acc = "" if r["accuracy"] is None else f"{r['accuracy'] * 100:.2f}"
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        state = "diverged" if r["diverged"] else r["state"].lower()
        table.add_row(str(r["number"]), state, acc, str(r["epochs_run"]), secs,
                      *(escape(_fmt(r["params"][label])) for label in columns.values()))
    out.print(table)
    if command:
        out.print(f"best: {command}", markup=False, soft_wrap=True)
    out.print(f"trials in {paths['trials']}, figure in {paths['figure']}", markup=False, soft_wrap=True)


def _fmt(value) -> str:
    from fmnist.recipes.overrides import format_value

    return f"{value:.4g}" if isinstance(value, float) else format_value(value)  # true, false, null as --set takes them


def register(app: typer.Typer) -> None:
    """Attach `sweep`."""
    app.command("sweep")(sweep)
