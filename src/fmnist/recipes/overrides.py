"""A recipe with settings changed by name: `key=value` or `group.key=value` (the sweep's parameters, `fmnist train
--set`, benchmarks.tune). Short names stand for the settings people tune most (`lr` is `optimizer.lr`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fmnist.config import Recipe
from fmnist.errors import UsageError

ALIASES = {"lr": "optimizer.lr", "momentum": "optimizer.momentum", "weight_decay": "optimizer.weight_decay",
           "nesterov": "optimizer.nesterov", "optimizer": "optimizer.name", "warmup": "schedule.warmup",
           "schedule": "schedule.name", "crop_padding": "augment.crop_padding", "flip": "augment.flip",
           "erase": "augment.erase"}
GROUPS = ("optimizer", "schedule", "augment")


def canonical(key: str) -> str:
    """The full name of a setting (`lr` -> `optimizer.lr`), or a UsageError listing what can be set."""
    key = ALIASES.get(key, key)
    group, _, field = key.rpartition(".")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    if not group and key in fields and key not in GROUPS:
        return key
    if group in GROUPS and field in {f.name for f in dataclasses.fields(_group_type(group))}:
        return key
    known = sorted(fields - set(GROUPS)) + [f"{g}.{f.name}" for g in GROUPS for f in dataclasses.fields(_group_type(g))]
    raise UsageError(f"unknown recipe setting {key!r}; settings: {', '.join(sorted(ALIASES))} or any of "
                     f"{', '.join(known)}")


def _group_type(group: str) -> type:
    """The config class of a group of settings (OptimizerConfig for "optimizer", ...)."""
    return type(getattr(_DEFAULT, group))


def parse_value(raw: str) -> Any:
    """A value as JSON when it parses (numbers, true/false, lists, objects), else the string itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def override(recipe: Recipe, key: str, value: Any) -> Recipe:
    """`recipe` with one setting changed (validated by the recipe's own checks)."""
    key = canonical(key)
    group, _, field = key.rpartition(".")
    try:
        if group:
            return dataclasses.replace(recipe, **{group: dataclasses.replace(getattr(recipe, group), **{field: value})})
        return dataclasses.replace(recipe, **{key: value})
    except TypeError as e:
        raise UsageError(f"cannot set {key} to {value!r}: {e}") from None


def apply_assignment(recipe: Recipe, assignment: str) -> Recipe:
    """`recipe` with `key=value` applied."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"a setting is KEY=VALUE (e.g. lr=0.2 or augment.erase=0.25), got {assignment!r}")
    return override(recipe, key.strip(), parse_value(raw))


_DEFAULT = Recipe(name="defaults", description="", model="mlp")
