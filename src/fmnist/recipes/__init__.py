"""The recipe catalogue: every named recipe (the seeds' systems and the modern ones), looked up by name."""

from __future__ import annotations

import difflib
import json
from typing import Any

from fmnist.config import ABOUT, Recipe
from fmnist.errors import FmnistError, UsageError
from fmnist.recipes.modern import FASHION_MEAN, FASHION_STD, MODERN
from fmnist.recipes.seeds import SEEDS

RECIPES: dict[str, Recipe] = {r.name: r for r in SEEDS + MODERN}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, or a UsageError listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name).lower(), list(RECIPES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown recipe {name!r}; {hint}known recipes: {', '.join(RECIPES)}") from None


def changes(saved: dict[str, Any]) -> list[str]:
    """How a saved recipe (`Recipe.to_dict()`, overrides included) differs from the catalogue's recipe of its name,
    one "setting value (the recipe's value)" per change; [] for a recipe the catalogue does not hold."""
    base = RECIPES.get(saved.get("name")) if isinstance(saved, dict) else None
    if base is None:
        return []
    try:  # a file written before a field existed gets its default, as loading it does
        saved = Recipe.from_dict(saved).to_dict()
    except FmnistError:
        pass
    ours, theirs = _flat(json.loads(json.dumps(saved))), _flat(json.loads(json.dumps(base.to_dict())))
    return [f"{key} {_show(ours.get(key))} (the recipe's {_show(theirs.get(key))})"
            for key in sorted(set(ours) | set(theirs)) if key not in ABOUT and ours.get(key) != theirs.get(key)]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


__all__ = ["FASHION_MEAN", "FASHION_STD", "RECIPES", "Recipe", "changes", "get_recipe"]
