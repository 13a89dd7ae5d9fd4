"""Model registry: every architecture is built by name from plain keyword arguments.

A model file stores the name and arguments (see fmnist.checkpoint), so `build_model(name, **args)` rebuilds it
without executing anything from the file. Every model maps uint8-derived float images [N, C, 28, 28] to
logits [N, num_classes]; softmax lives in the loss and in prediction, never in the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from fmnist.errors import UsageError

ModelFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register a model class or factory under `name`."""

    def wrap(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return wrap


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model `name` with `kwargs` (in_channels, num_classes and its own arguments)."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**kwargs)


def list_models() -> list[str]:
    """Names of every registered model."""
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Importing the modules runs their @register_model decorators.
    from fmnist.models import resnet, seeds  # noqa: F401
