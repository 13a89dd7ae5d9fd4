"""`fmnist models`: the recipes with their size and cost; `fmnist models show RECIPE`: the layer table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fmnist.cli.common import JsonOption, out, print_json
from fmnist.recipes import RECIPES, Recipe, get_recipe

if TYPE_CHECKING:
    from fmnist.models.summary import ModelSummary

models_app = typer.Typer(help="List the recipes (architecture, size, cost, training) and show their layers.", no_args_is_help=False)


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
    table = Table(title="Recipes", title_justify="left")
    for col, right in [("recipe", False), ("model", False), ("params", True), ("MACs/image", True), ("epochs", True),
                       ("batch", True), ("optimizer", False), ("seed", False), ("seed reported", False)]:
        table.add_column(col, justify="right" if right else "left")
    for r in rows:
        table.add_row(r["name"], r["model"], f"{r['params']:,}", f"{r['macs']:,}", str(r["epochs"]), str(r["batch_size"]),
                      _optimizer_text(r), r["seed_doc"], r["reported_note"])
    out.print(table)


@models_app.command("show")
def show(recipe: Annotated[str, typer.Argument(help="Recipe name (see `fmnist models`).")], as_json: JsonOption = False) -> None:
    """Print a recipe's layer table (layer, output shape, parameters, MACs per image) with totals."""
    from fmnist.models.summary import format_summary

    r = get_recipe(recipe)
    summary = _summarize(r)
    if as_json:
        print_json({"recipe": r.name, "model_args": r.model_args, **summary.to_dict()})
        return
    args = ", ".join(f"{k}={v}" for k, v in r.model_args.items())
    out.print(format_summary(summary, title=f"{r.name}: {summary.model}({args})"))


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
