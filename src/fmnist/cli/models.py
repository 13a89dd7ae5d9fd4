"""`fmnist models`: the recipes with their size and cost; `fmnist models show RECIPE`: the layer table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from fmnist.cli.common import JsonOption, complete_recipe, out, print_json
from fmnist.recipes import RECIPES, Recipe, get_recipe

if TYPE_CHECKING:
    from fmnist.models.summary import ModelSummary

models_app = typer.Typer(help="List the recipes (architecture, size, cost, training) and show their layers.", no_args_is_help=False)


# (key, header, right-justified, may wrap): the recipe name and the figures are never wrapped or cut.
_CELLS = {
    "name": ("recipe", False, False), "model": ("model", False, True), "params": ("params", True, False),
    "macs": ("MACs/image", True, False), "epochs": ("epochs", True, False), "batch_size": ("batch", True, False),
    "optimizer": ("optimizer", False, True), "seed_doc": ("seed", False, True),
    "reported_note": ("seed reported", False, True),
}
_COLUMNS = tuple(_CELLS)
_NARROW = (("Recipes", ("name", "params", "macs", "epochs", "batch_size", "optimizer")),
           ("Models and seed figures", ("name", "model", "seed_doc", "reported_note")))


def register(app: typer.Typer) -> None:
    """Attach `fmnist models` and `fmnist models show`."""
    app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def list_recipes(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every recipe: model, parameters, MACs per image, epochs, batch size, optimizer, seed figure."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [_recipe_row(r) for r in RECIPES.values()]
    if as_json:
        print_json(rows)
        return
    table = _recipes_table(rows, "Recipes", _COLUMNS)
    if _width(table) <= out.width:
        out.print(table)
        return
    # A narrow terminal: the same cells in two tables, each fitting, rather than one with every cell cut short.
    for title, keys in _NARROW:
        out.print(_recipes_table(rows, title, keys))


def _recipes_table(rows: list[dict[str, Any]], title: str, keys: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for key in keys:
        header, right, wraps = _CELLS[key]
        table.add_column(header, justify="right" if right else "left", no_wrap=not wraps, overflow="fold")
    for r in rows:
        table.add_row(*(escape(_cell(r, key)) for key in keys))
    return table


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "optimizer":
        return _optimizer_text(row)
    if key in ("params", "macs"):
        return f"{row[key]:,}"
    return str(row[key])


def _width(table: Table) -> int:
    """The width `table` takes with no cell wrapped."""
    return Measurement.get(out, out.options.update_width(10**6), table).maximum


@models_app.command("show")
def show(recipe: Annotated[str, typer.Argument(help="Recipe name (see `fmnist models`).", autocompletion=complete_recipe)], as_json: JsonOption = False) -> None:
    """Print a recipe's layer table (layer, output shape, parameters, MACs per image) with totals."""
    from fmnist.models.summary import format_summary

    r = get_recipe(recipe)
    summary = _summarize(r)
    if as_json:
        print_json({"recipe": r.name, "model_args": r.model_args, **summary.to_dict()})
        return
    args = ", ".join(f"{k}={v}" for k, v in r.model_args.items())
    out.print(format_summary(summary, title=escape(f"{r.name}: {summary.model}({args})")))


def _summarize(recipe: Recipe) -> "ModelSummary":
    from fmnist.models import build_model
    from fmnist.models.summary import summarize

    return summarize(build_model(recipe.model, **recipe.model_args))


def _recipe_row(recipe: Recipe) -> dict[str, Any]:
    summary = _summarize(recipe)
    return {
        "name": recipe.name,
        "description": recipe.description,
        "model": recipe.model,
        "model_args": recipe.model_args,
        "params": summary.params,
        "macs": summary.macs,
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "optimizer": recipe.optimizer.name,
        "lr": recipe.optimizer.lr,
        "momentum": recipe.optimizer.momentum,
        "schedule": recipe.schedule.name,
        "seed_doc": recipe.seed_doc,
        "reported": recipe.reported,
        "reported_note": recipe.reported_note,
    }


def _optimizer_text(row: dict[str, Any]) -> str:
    text = f"{row['optimizer']} lr {row['lr']:g}"
    if row["momentum"]:
        text += f" m {row['momentum']:g}"
    if row["schedule"] != "constant":
        text += f", {row['schedule']}"
    return text
