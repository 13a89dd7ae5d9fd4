"""The optional packages of the ONNX extra (onnx, onnxscript, onnxruntime), imported only when they are used."""

from __future__ import annotations

import importlib
from types import ModuleType

from fmnist.errors import UsageError

INSTALL_HINT = "pip install 'fmnist[onnx]'"


def require(name: str, purpose: str = "ONNX export") -> ModuleType:
    """The module `name`, or a UsageError saying how to install it when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(f"{purpose} needs the package {name!r}, which is not installed; install it with: "
                         f"{INSTALL_HINT}") from None
