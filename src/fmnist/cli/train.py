"""`fmnist train RECIPE`: train, evaluate on the test set, write the run directory and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

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
from fmnist.recipes import RECIPES


def train(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Argument(help=f"Recipe name: {', '.join(RECIPES)} (see `fmnist models`).",
                                                    autocompletion=complete_recipe)] = "fast",
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override the recipe's epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Override the batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(min=0.0, help="Override the peak learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (weights, shuffling, subsets), 0 to 4294967295.")] = 0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use only N training images (quick runs).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help=(
        "Change a recipe setting, KEY=VALUE: lr=0.2, epochs=12, augment.erase=0.25, optimizer.weight_decay=5e-4 "
        "(what `fmnist sweep` prints). Repeat for each."), show_default=False)] = None,
    val: Annotated[Optional[str], typer.Option("--val", help="Validation protocol: test, holdout or none.")] = None,
    precision: Annotated[str, typer.Option(help="recipe (its own choice), auto (bf16 where the hardware has it), bf16 or fp32.")] = "recipe",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default runs/<recipe>-<timestamp>).")] = None,
    init: Annotated[Optional[Path], typer.Option("--init", help=(
        "Start from this model's weights (fine-tuning; same recipe architecture), e.g. with --dataset folder."),
        show_default=False)] = None,
    mix: Annotated[int, typer.Option("--mix", min=0, help=(
        "With --dataset folder: add N Fashion-MNIST training images so the model does not forget them."))] = 0,
    resume: Annotated[Optional[Path], typer.Option("--resume", help=(
        "Continue the interrupted run in this directory, with its own config (no other training options with it)."),
        show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out, whole.")] = False,
    keep_checkpoints: Annotated[bool, typer.Option("--keep-checkpoints", help=(
        "Keep checkpoint.safetensors in the run directory after the model is written."))] = False,
    data_dir: DataDirOption = None,
    dataset: DatasetOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a recipe, evaluate it on the test set, and write a run directory with a report."""
    import dataclasses
    import shlex

    from fmnist.cli.progress import EpochProgress, StopOnSignal, interrupt_exit_code
    from fmnist.train.loop import TrainingInterrupted
    from fmnist.config import RunConfig, TrainOptions
    from fmnist.pipeline import train_run
    from fmnist.recipes import get_recipe
    from fmnist.recipes.overrides import apply_assignment
    from fmnist.rundir import previous_run
    from fmnist.runtime import configure_process

    s = settings(ctx, data_dir, dataset, device)
    if resume is not None:
        from fmnist.errors import DataError, FmnistError, UsageError
        from fmnist.rundir import CONFIG_FILE, read_json

        # The run continues as it was configured: an option typed beside --resume would be silently ignored.
        # (Sources by name: typer vendors its own click, whose ParameterSource is not click's.)
        root = ctx.find_root()
        given = [p.opts[0] if p.opts else p.name for c in dict.fromkeys((root, ctx)) for p in c.command.params
                 if p.name not in ("resume", "keep_checkpoints", "as_json")
                 and getattr(c.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
        if given:
            raise UsageError(f"--resume continues the run with its own settings, so {', '.join(given)} would be "
                             "ignored; leave them out (to train differently, start a new run with another --out)")
        if not resume.is_dir():
            raise UsageError(f"--resume {resume}: {'a file' if resume.exists() else 'no such directory'}; "
                             "name the run directory of an interrupted run")
        try:
            cfg = dataclasses.replace(RunConfig.from_dict(read_json(resume / CONFIG_FILE)), out=resume)
        except FmnistError as e:
            raise DataError(f"cannot resume {resume}: {e}") from None
        r = cfg.recipe
    else:
        r = get_recipe(recipe)
        r = r.replace(epochs=epochs, batch_size=batch_size, validation=val)
        if lr is not None:
            r = dataclasses.replace(r, optimizer=dataclasses.replace(r.optimizer, lr=lr))
        for assignment in set_ or []:
            r = apply_assignment(r, assignment)
        cfg = RunConfig(
            recipe=r,
            options=TrainOptions(seed=seed, device=s.device, precision=precision),
            dataset=s.dataset,
            data_dir=s.data_dir,
            limit=limit,
            out=out_dir,
            init=init,
            mix=mix,
        )
    configure_process()
    stop = StopOnSignal()
    try:
        with stop.installed():
            result = train_run(cfg, callbacks=EpochProgress(stop=stop), resume=resume is not None, overwrite=overwrite,
                               keep_checkpoint=keep_checkpoints)
    except TrainingInterrupted as e:
        where = e.checkpoint.parent if e.checkpoint else None
        hint = f"; resume with: fmnist train --resume {shlex.quote(str(where))}" if where else ""
        if where is not None and previous_run(where).is_dir():
            hint += f" (the run it replaces is kept in {previous_run(where)} until then)"
        error = TrainingInterrupted(f"{e}{hint}", e.checkpoint)
        error.exit_code = interrupt_exit_code()  # 130 after Ctrl-C, 143 after SIGTERM
        raise error from None
    m = result.metrics
    summary = {
        "run_dir": str(result.run_dir),
        "recipe": r.name,
        "test_accuracy": m.test_accuracy,
        "test_loss": m.test_loss,
        "train_seconds": m.train_seconds,
        "epochs": m.epochs,
        "device": m.device,
        "precision": m.precision,
    }
    if as_json:
        print_json(summary)
        return
    err.print(f"validation: {m.validation_note}", markup=False, soft_wrap=True)
    out.print(
        f"[bold]{escape(r.name)}[/]: test accuracy [bold green]{m.test_accuracy * 100:.2f}%[/] (loss {m.test_loss:.4f}"
        + (f", {m.test_images:,} test images" if m.test_images else "") + "), "
        f"{m.epochs} epoch{'s' if m.epochs != 1 else ''} in {m.train_seconds:.1f}s on {escape(m.device)} ({escape(m.precision)})", soft_wrap=True,
    )
    out.print(f"run directory: {result.run_dir}", markup=False, soft_wrap=True)  # a path is printed as it is
    out.print(f"report: {result.run_dir / 'report.md'}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach `train`."""
    app.command("train")(train)
