"""The recipe catalogue: every named recipe (the seeds' systems and the modern ones), looked up by name."""

from __future__ import annotations

from fmnist.config import Recipe
from fmnist.errors import UsageError
from fmnist.recipes.modern import FASHION_MEAN, FASHION_STD, MODERN
from fmnist.recipes.seeds import SEEDS

RECIPES: dict[str, Recipe] = {r.name: r for r in SEEDS + MODERN}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, or a UsageError listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}") from None


__all__ = ["FASHION_MEAN", "FASHION_STD", "RECIPES", "Recipe", "get_recipe"]
