"""Model registry: every architecture is built by name from plain keyword arguments.

The registry is written out below, name by name: nothing registers itself by being imported.

A model file stores the name and arguments (see fmnist.checkpoint), so `build_model(name, **args)` rebuilds it
without executing anything from the file. Every model maps uint8-derived float images [N, C, 28, 28] to
logits [N, num_classes]; softmax lives in the loss and in prediction, never in the model.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fmnist.errors import UsageError
from fmnist.models.bounds import COMMON_ARGS, arg_problems
from fmnist.models.resnet import ResNet
from fmnist.models.seeds import MLP, Baseline, MiniVGG, Seed003, Seed004

ModelFactory = Callable[..., nn.Module]

MODELS: dict[str, ModelFactory] = {
    "mlp": MLP,
    "baseline": Baseline,
    "seed003": Seed003,
    "seed004": Seed004,
    "minivgg": MiniVGG,
    "resnet": ResNet,
}


def register_model(name: str, factory: ModelFactory) -> ModelFactory:
    """Add `factory` (a model class or function) under `name`; a name already taken is an error."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = factory
    return factory


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model `name` with `kwargs` (in_channels, num_classes and its own arguments)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
    # Arguments it does not take, of another kind than its defaults (a hand-edited config) or out of the bounds a
    # model file may hold (so that what trains can be loaded) are the user's to fix; an error raised inside a model
    # built from sound arguments is a bug and keeps its traceback.
    try:
        inspect.signature(factory).bind(**kwargs)
        wrong = model_arg_problems(name, kwargs)
    except TypeError as e:
        wrong = [str(e)]
    if wrong:
        raise UsageError(f"model {name!r} cannot be built with {'; '.join(wrong)}; check the recipe's model_args")
    try:
        return factory(**kwargs)
    except UsageError as e:  # arguments sound one by one that the model refuses together (widths and blocks)
        raise UsageError(f"model {name!r} cannot be built: {e}; check the recipe's model_args") from None


def check_buildable(name: str, **kwargs: Any) -> None:
    """build_model's UsageError, if any, for these arguments, without allocating the model (on the meta device)."""
    with torch.device("meta"):
        build_model(name, **kwargs)


def model_arg_problems(name: str, args: dict[str, Any]) -> list[str]:
    """What is wrong with some of registered model `name`'s arguments: a value of another kind than the argument's
    default, or one of its own arguments out of the bounds a model file is checked against (fmnist.models.bounds)."""
    parameters = inspect.signature(MODELS[name]).parameters
    wrong = [f"model_args {key}={_json(value)} is not {_kind(parameters[key].default)} (its default: "
             f"{_json(parameters[key].default)})"
             for key, value in args.items() if key in parameters and not _same_kind(value, parameters[key].default)]
    return wrong or arg_problems(name, {k: v for k, v in args.items() if k not in COMMON_ARGS})


def _same_kind(value: Any, default: Any) -> bool:
    """Whether `value` can stand where a parameter's `default` is: a number for a number (not a bool for one), a
    list or tuple for either, the same type otherwise; anything where there is no default or it is None."""
    if default is inspect.Parameter.empty or default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _kind(default: Any) -> str:
    """What kind of value may stand where `default` is, in words."""
    kinds = {bool: "true or false", float: "a number", int: "a whole number", str: "a string", list: "a list",
             tuple: "a list"}
    return next((words for kind, words in kinds.items() if isinstance(default, kind)), type(default).__name__)


def _json(value: Any) -> str:
    """A value as a recipe file or `--set` writes it (true, [64, 128]), where it can be written so."""
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        return repr(value)


def list_models() -> list[str]:
    """Names of every registered model."""
    return sorted(MODELS)
