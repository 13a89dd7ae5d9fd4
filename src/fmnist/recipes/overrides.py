"""A recipe with settings changed by name: `key=value` or `group.key=value` (the sweep's parameters, `fmnist train
--set`, benchmarks.tune). Short names stand for the settings people tune most (`lr` is `optimizer.lr`);
`model_args.NAME` sets one argument of the recipe's architecture and keeps the others."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any

from fmnist.config import ABOUT, Recipe
from fmnist.errors import UsageError
from fmnist.models import MODELS, check_buildable, model_arg_problems
from fmnist.recipes import get_recipe

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
    if group == "model_args" and field.isidentifier():
        return key  # checked against the architecture's arguments in `override`
    known = sorted(fields - set(GROUPS) - set(ABOUT)) + [f"{g}.{f.name}" for g in GROUPS
                                                         for f in dataclasses.fields(_group_type(g))]
    known.append("model_args.NAME")
    raise UsageError(f"unknown recipe setting {key!r}; settings: {', '.join(sorted(ALIASES))} or any of "
                     f"{', '.join(known)}")


def default_value(key: str) -> Any:
    """A setting's default (`key` as `canonical` gives it); None for an architecture's argument."""
    group, _, field = key.rpartition(".")
    if group == "model_args":
        return None
    return getattr(getattr(_DEFAULT, group), field) if group else getattr(_DEFAULT, key)


def _group_type(group: str) -> type:
    """The config class of a group of settings (OptimizerConfig for "optimizer", ...)."""
    return type(getattr(_DEFAULT, group))


def parse_value(raw: str) -> Any:
    """A value as JSON when it parses (numbers, true/false, lists, objects), else the string itself; true and
    false in any case (Python's True and False too) are booleans."""
    if raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def format_value(value: Any) -> str:
    """A value as `--set` and `--param` read it back (parse_value's inverse): strings as they are, the rest as JSON
    (true, not Python's True; null, not None)."""
    return value if isinstance(value, str) else json.dumps(value)


def override(recipe: Recipe, key: str, value: Any) -> Recipe:
    """`recipe` with one setting changed (validated by the recipe's own checks)."""
    key = canonical(key)
    group, _, field = key.rpartition(".")
    if group == "model_args":
        return dataclasses.replace(recipe, model_args={**recipe.model_args, field: _model_arg(recipe.model, field, value)})
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


# `fast+lr=0.1+augment.erase=0.25`: a `+` that starts a KEY= (not the one inside a number such as 1e+3).
_VARIANT_PLUS = re.compile(r"\+(?=[A-Za-z_][\w.]*=)")


def variant(spec: str, first: tuple[str, ...] = ()) -> Recipe:
    """A recipe of the catalogue by name, or `NAME+KEY=VALUE[+KEY=VALUE...]`: that recipe with the settings changed
    and named by `spec` itself (`fast+lr=0.1`), so that a cross-validation can compare it with the recipe it varies
    on the same folds. The assignments `first` (a command's own options, such as `epochs=3`) apply before the
    variant's own. A UsageError names an unknown recipe or a setting it refuses."""
    base, *assignments = _VARIANT_PLUS.split(spec)
    if "+" in base or "=" in base:
        raise UsageError(f"{spec!r} is neither a recipe nor a variant of one: write a variant as RECIPE+KEY=VALUE "
                         "(e.g. fast+lr=0.1 or fast+lr=0.1+augment.erase=0.25)")
    recipe = get_recipe(base)
    for assignment in first:
        recipe = apply_assignment(recipe, assignment)
    try:
        for assignment in assignments:
            if canonical(assignment.partition("=")[0]) in ABOUT:
                raise UsageError(f"a variant is named by what it changes; set its training settings, not "
                                 f"{assignment.partition('=')[0]}")
            recipe = apply_assignment(recipe, assignment)
        if assignments and recipe.model in MODELS:  # its model arguments together (widths and blocks alike long)
            check_buildable(recipe.model, **recipe.model_args)
    except UsageError as e:
        raise UsageError(f"{spec!r}: {e}") from None
    return dataclasses.replace(recipe, name=spec) if assignments else recipe


def _model_arg(model: str, name: str, value: Any) -> Any:
    """`value`, once `name` is known to be an argument of architecture `model` (else a UsageError naming them)."""
    factory = MODELS.get(model)
    if factory is None:
        return value  # an unknown architecture is reported when it is built
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return value
    names = sorted(n for n in params if n not in ("in_channels", "num_classes"))
    if name not in names:
        raise UsageError(f"model {model!r} has no argument {name!r}; its arguments: {', '.join(names)}")
    problems = model_arg_problems(model, {name: value})
    if problems:
        raise UsageError(f"model {model!r}: {'; '.join(problems)}")
    return value


_DEFAULT = Recipe(name="defaults", description="", model="mlp")
