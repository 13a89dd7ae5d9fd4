"""`fmnist runs [DIR]`: a table of the finished runs under DIR; `fmnist runs compare A B`: two runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Column

from fmnist.cli.common import JsonOption, err, out, print_json
from fmnist.errors import UsageError

SORT_KEYS = ("date", "accuracy", "seconds", "epochs", "recipe", "dataset", "path")
METRIC_ROWS = (("test accuracy", "test_accuracy", "{:.2%}"), ("test loss", "test_loss", "{:.4f}"),
               ("training seconds", "train_seconds", "{:.1f}"), ("seconds per epoch", "seconds_per_epoch", "{:.2f}"),
               ("epochs", "epochs", "{}"), ("device", "device", "{}"), ("precision", "precision", "{}"))


def runs(
    args: Annotated[Optional[list[str]], typer.Argument(
        help="DIR to list (default runs/), or `compare A B` for two run directories.", show_default=False,
        metavar="[DIR | compare A B]")] = None,
    sort: Annotated[str, typer.Option("--sort", help=f"Sort the list by one of: {', '.join(SORT_KEYS)}.")] = "date",
    reverse: Annotated[bool, typer.Option("--reverse", help="Reverse the order (newest or best first by default).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List finished runs (recipe, dataset, test accuracy, training time, epochs, date, path), or compare two."""
    args = list(args or [])
    if args[:1] == ["compare"]:
        if len(args) != 3:
            raise UsageError("usage: fmnist runs compare RUN_A RUN_B (two run directories)")
        _compare(Path(args[1]), Path(args[2]), as_json)
        return
    if len(args) > 1:
        raise UsageError("fmnist runs takes one directory (or `compare A B`)")
    _list(Path(args[0]) if args else Path("runs"), sort, reverse, as_json)


def _row(run) -> dict:
    return {"recipe": run.config.recipe.name, "dataset": run.metrics.dataset or run.config.dataset,
            "test_accuracy": run.metrics.test_accuracy, "train_seconds": run.metrics.train_seconds,
            "epochs": run.epochs, "date": run.created or f"{run.finished:%Y-%m-%d %H:%M:%S}", "path": str(run.run_dir)}


def _list(root: Path, sort: str, reverse: bool, as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from fmnist.rundir import find_runs

    if sort not in SORT_KEYS:
        raise UsageError(f"--sort {sort!r}: use one of {', '.join(SORT_KEYS)}")
    records, problems = find_runs(root)
    rows = [_row(r) for r in records]
    key = {"accuracy": "test_accuracy", "seconds": "train_seconds"}.get(sort, sort)
    descending = sort in ("date", "accuracy")  # newest and best first
    rows.sort(key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0), reverse=descending != reverse)
    for problem in problems:
        err.print(f"skipped: {problem}", markup=False, soft_wrap=True)
    if as_json:
        print_json({"root": str(root), "runs": rows, "skipped": problems})
        return
    if not rows:
        from fmnist.paths import cv_dir_note

        note = cv_dir_note(root)
        out.print(f"no finished runs under {root}" + (f": {note}" if note else ""), markup=False, soft_wrap=True)
        return
    # Every cell whole: long ones fold onto more lines rather than end in an ellipsis (a path must stay a path).
    table = Table(*(Column(h, overflow="fold") for h in ("recipe", "dataset", "test acc", "train s", "epochs", "date", "path")))
    for r in rows:
        seconds = "—" if r["train_seconds"] is None else f"{r['train_seconds']:.1f}"
        table.add_row(escape(r["recipe"]), escape(r["dataset"]), f"{r['test_accuracy'] * 100:.2f}%", seconds,
                      str(r["epochs"]), escape(r["date"]), escape(r["path"]))
    out.print(table)


def _compare(a_dir: Path, b_dir: Path, as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from fmnist.rundir import config_differences, load_run

    a, b = load_run(a_dir), load_run(b_dir)
    differences = config_differences(a, b)
    metrics = {field: (getattr(a.metrics, field), getattr(b.metrics, field)) for _, field, _ in METRIC_ROWS}
    if as_json:
        print_json({"a": str(a_dir), "b": str(b_dir), "config": {k: list(v) for k, v in differences.items()},
                    "metrics": {k: list(v) for k, v in metrics.items()}})
        return
    heads = [Column(h, overflow="fold") for h in ("setting", escape(str(a_dir)), escape(str(b_dir)))]
    config = Table(*heads, title="config (only what differs)")
    for key, (va, vb) in differences.items():
        config.add_row(escape(key), escape(_text(va)), escape(_text(vb)))
    if not differences:
        config.add_row("(the same config)", "", "")
    out.print(config)
    heads = [Column(h, overflow="fold") for h in ("metric", escape(str(a_dir)), escape(str(b_dir)))]
    results = Table(*heads, title="results")
    for label, field, spec in METRIC_ROWS:
        va, vb = metrics[field]
        results.add_row(label, escape(_text(va, spec)), escape(_text(vb, spec)))
    out.print(results)


def _text(value, spec: str = "{}") -> str:
    return "—" if value is None else spec.format(value)


def register(app: typer.Typer) -> None:
    """Attach `runs`."""
    app.command("runs")(runs)
