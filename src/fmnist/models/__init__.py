"""Model registry: every architecture is built by name from plain keyword arguments.

The registry is written out below, name by name: nothing registers itself by being imported.

A model file stores the name and arguments (see fmnist.checkpoint), so `build_model(name, **args)` rebuilds it
without executing anything from the file. Every model maps uint8-derived float images [N, C, 28, 28] to
logits [N, num_classes]; softmax lives in the loss and in prediction, never in the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from fmnist.errors import UsageError
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
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as e:  # an argument it does not take, or of the wrong type (a hand-edited config)
        shown = {k: v for k, v in kwargs.items() if k not in ("in_channels", "num_classes")}
        raise UsageError(f"model {name!r} cannot be built with {shown} ({str(e).splitlines()[0]}); check the recipe's "
                         "model_args") from None


def list_models() -> list[str]:
    """Names of every registered model."""
    return sorted(MODELS)
