"""`fmnist cv RECIPE [RECIPE...]`: K-fold cross-validation of recipes on the same folds, and their comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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


def cv(
    ctx: typer.Context,
    recipes: Annotated[list[str], typer.Argument(help=(
        "Recipe names (see `fmnist models`), or variants RECIPE+KEY=VALUE[+KEY=VALUE] (e.g. fast+lr=0.1, settings "
        "as `fmnist train --set` takes them); the first is the reference."), show_default=False,
        autocompletion=complete_recipe)],
    folds: Annotated[int, typer.Option("--folds", "-k", min=2, help="Folds per repeat (K).")] = 5,
    seed: Annotated[int, typer.Option(help=(
        "Shuffle seed, 0 to 4294967295; 1 gives the folds of the tutorial code's KFold(5, shuffle=True, random_state=1)."))] = 1,
    stratified: Annotated[bool, typer.Option("--stratified", help="Keep each class's share in every fold.")] = False,
    repeats: Annotated[int, typer.Option(min=1, help="Repeated K-fold: repeat r shuffles with seed + r - 1.")] = 1,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override every recipe's epochs.")] = None,
    limit: Annotated[int | None, typer.Option(min=2, help="Fold only a seeded subset of N training images (quick runs).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory; rerun with the same one to resume (default runs/cv-<recipes>).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=(
        "Replace a cross-validation in --out made with other options (recipes, folds, seed, data), whole."))] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Folds trained at once (parallel processes, or Ray tasks).")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, help="Intra-op threads per fold (default: available cores / jobs).")] = None,
    precision: Annotated[str, typer.Option(help="recipe (its own choice), auto, bf16 or fp32.")] = "recipe",
    ray: Annotated[bool, typer.Option("--ray", help="Run folds as tasks on a local Ray instance (started or joined).")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Run folds on the Ray cluster at ADDR.", show_default=False)] = None,
    data_dir: DataDirOption = None,
    dataset: DatasetOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cross-validate recipes on the same folds: fold scores, mean/std/CI, paired tests, figures and report.md.

    With --json, stdout carries cv.json's content without the per-epoch histories (those stay in cv.json).
    """
    from rich.markup import escape

    from fmnist.cv.folds import Fold
    from fmnist.cv.executors import import_ray
    from fmnist.cv.results import CVConfig, CVData, CVProgress, FoldResult, FoldTask
    from fmnist.cv.runner import run_cv
    from fmnist.data import load_dataset
    from fmnist.data.registry import FOLDER
    from fmnist.imaging.folder import load_folder
    from fmnist.paths import safe_name
    from fmnist.recipes.overrides import variant
    from fmnist.runtime import keep_freed_memory

    s = settings(ctx, data_dir, dataset, device)
    keep_freed_memory()  # threads: each fold sets its own (--threads)
    chosen = tuple(variant(name, first=(f"epochs={epochs}",) if epochs else ()) for name in recipes)
    if ray or ray_address:
        import_ray()  # fail before loading data or training anything
    config = CVConfig(
        recipes=chosen,
        out=out_dir or Path("runs") / ("cv-" + "+".join(safe_name(name) for name in recipes)),
        folds=folds,
        seed=seed,
        stratified=stratified,
        repeats=repeats,
        limit=limit,
        jobs=jobs,
        threads=threads,
        device=s.device,
        precision=precision,
        ray=ray,
        ray_address=ray_address,
    )
    # Fold lines are results: stdout normally, stderr when stdout is reserved for the JSON document.
    lines = err if as_json else out

    class Printer(CVProgress):
        def start(self, pending: int, reused: int, executor: str, threads: int) -> None:
            workers = min(jobs, pending)
            where = {
                "sequential": "in this process",
                "processes": f"in {workers} process{'es' if workers != 1 else ''}",
                "ray": "as Ray tasks",
            }[executor]
            err.print(f"{pending} folds to train {where} ({threads} thread(s) each), {reused} read back from {config.out}",
                      markup=False)

        def note(self, message: str) -> None:
            err.print(f"note: {message}", markup=False)

        def fold_callbacks(self, task: FoldTask):
            from fmnist.cli.progress import EpochProgress

            return EpochProgress(label=f"{task.label} ", enabled=not as_json)

        def fold_done(self, result: FoldResult, fold: Fold) -> None:
            how = "read back" if result.reused else f"{result.seconds:.1f} s"
            lines.print(f"{result.recipe} {fold.label}: {result.score * 100:.2f}% ({how})", markup=False)

    from fmnist.cli.progress import interrupt_exit_code, sigterm_as_ctrl_c

    # An image folder's folds are drawn from DIR/train/, or from the part of DIR/<class>/ that `fmnist train` trains
    # on at its default seed: the part it holds out stays unseen for the chosen recipe's test.
    ds = load_folder(s.data_dir) if s.dataset == FOLDER else load_dataset(s.dataset, data_dir=s.data_dir)
    for _, why in ds.skipped:  # an image folder's files that could not be read, as `train` lists them
        err.print(f"skipped: {why}", markup=False, soft_wrap=True)
    data = CVData.from_dataset(ds)
    try:
        with sigterm_as_ctrl_c():
            result = run_cv(config, data, Printer(), overwrite=overwrite)
    except KeyboardInterrupt:
        from fmnist.cv.store import FOLDS_DIR
        from fmnist.rundir import previous_run
        from fmnist.train.loop import TrainingInterrupted

        where = "starts over (Ray folds keep no checkpoint)" if ray or ray_address else \
            "continues from its last epoch's checkpoint"
        kept = previous_run(Path(config.out))
        aside = (f" (the cross-validation it replaces waits in {kept} until then; move it back to keep it instead)"
                 if kept.is_dir() else "")
        finished = any(p.is_file() for p in Path(config.out).glob(f"{FOLDS_DIR}/*/*.json"))
        done = f"the finished folds are kept in {config.out}" if finished else "no fold had finished"
        error = TrainingInterrupted(f"interrupted: {done}, and a fold in progress {where}; run the same command "
                                    f"again to continue{aside}", None)
        error.exit_code = interrupt_exit_code()
        raise error from None
    if as_json:
        print_json(result.to_dict(histories=False))
        return
    for name, summary in result.summaries.items():
        ci = "" if summary.n < 2 else f"95% CI {summary.ci_low * 100:.2f}–{summary.ci_high * 100:.2f}, "
        std = "" if summary.n < 2 else f" ± {summary.std * 100:.2f}"
        out.print(f"[bold]{escape(name)}[/]: {summary.mean * 100:.2f}%{std} ({ci}{summary.n} folds)")
    for comparison in result.comparisons:
        out.print(comparison.sentence, markup=False)
    out.print(f"report: {result.out / 'report.md'}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `cv`."""
    app.command("cv")(cv)
