"""ONNX export and the ONNX Runtime backend: `fmnist export`, and `--backend onnx` for predict and evaluate.

    fold_batchnorm(model)                  BatchNorm folded into the layer before it (fmnist.export.fold)
    export_onnx(model, meta, path, ...)    a self-describing .onnx file, optionally verified (fmnist.export.onnx)
    OnnxPredictor(path_or_bytes)           a BasePredictor running onnxruntime on the CPU (fmnist.export.runtime)
    load_predictor(path, backend)          the predictor of either backend for a model file or an .onnx file

The optional packages (onnx, onnxscript, onnxruntime: `pip install 'fmnist[onnx]'`) are imported only when used,
so the torch backend works without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fmnist.checkpoint import load_model
from fmnist.errors import UsageError
from fmnist.export.deps import require
from fmnist.export.fold import count_batchnorm, fold_batchnorm
from fmnist.export.metadata import INPUT_TYPES
from fmnist.export.onnx import (
    ExportGraph,
    ExportReport,
    check_destination,
    check_input_type,
    export_onnx,
    export_onnx_bytes,
)
from fmnist.export.runtime import OnnxPredictor
from fmnist.export.verify import (
    RANDOM_IMAGES,
    Verification,
    measure,
    verification_images,
    verify,
)
from fmnist.inference import BasePredictor, Predictor

BACKENDS = ("torch", "onnx")

__all__ = [
    "BACKENDS", "INPUT_TYPES", "auto_backend", "RANDOM_IMAGES", "ExportGraph", "ExportReport", "OnnxPredictor", "Verification",
    "check_destination", "check_input_type", "count_batchnorm", "export_onnx", "export_onnx_bytes", "fold_batchnorm",
    "is_onnx_path", "load_predictor", "measure", "verification_images", "verify",
]


def is_onnx_path(path: str | os.PathLike) -> bool:
    """Whether `path` names an ONNX file (by its .onnx suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def auto_backend(path: str | os.PathLike, device: str | torch.device = "cpu") -> str:
    """"onnx" for an .onnx file, or on the CPU when ONNX Runtime is installed (3-8x the single-image speed of
    PyTorch eager for the fast recipe's model on 2 cores; docs/results.md); else "torch"."""
    if is_onnx_path(path):
        return "onnx"
    if torch.device(device).type != "cpu":
        return "torch"
    try:
        for package in ("onnxruntime", "onnx", "onnxscript"):  # to run it, and to export a model file in memory
            require(package, "the ONNX backend")
    except UsageError:
        return "torch"
    return "onnx"


def load_predictor(path: str | os.PathLike, backend: str = "torch", device: str | torch.device = "cpu",
                   spin: bool = True, serving: bool = False) -> BasePredictor:
    """The predictor for a model file, run directory or exported .onnx file on `backend`.

    torch: the model file on `device` (an .onnx file is refused: it needs backend onnx). onnx: an .onnx file as it
    is; a model file or run directory is exported in memory first. The ONNX backend runs on the CPU, whatever
    `device` says; `spin` False lets its idle threads sleep (see OnnxPredictor).
    `serving`: the torch model with its BatchNorms folded into the convolutions (fold.py), about 1.7x the images/s
    of the fast recipe's model on 2 CPU cores, probabilities within about 1e-6; evaluation leaves it False, so a
    model's recorded accuracy is reproduced exactly.
    """
    if backend == "auto":
        backend = auto_backend(path, device)
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; use auto, {' or '.join(BACKENDS)}")
    if backend == "torch":
        if is_onnx_path(path):
            raise UsageError(f"{path} is an exported ONNX model, which the torch backend cannot run; "
                             "pass --backend onnx, or give the model.safetensors it was exported from")
        predictor = Predictor.from_file(path, device=device)
        if serving:
            predictor.model = fold_batchnorm(predictor.model)[0].to(predictor.device)
        return predictor
    require("onnxruntime", "the ONNX backend (--backend onnx)")  # before an export that would be wasted
    if is_onnx_path(path):
        return OnnxPredictor(path, spin=spin)
    model, meta = load_model(path, "cpu")
    return OnnxPredictor(export_onnx_bytes(model, meta), spin=spin)
