"""Export a model to ONNX: one self-describing graph from raw pixels to class probabilities.

The graph wraps the eval-mode model with its BatchNorms folded (fmnist.export.fold). Input `images` [batch, H, W]
(uint8 0..255, or float32 0..1 for input_type "float"; the batch axis is dynamic); inside the graph the pixels are
normalized with the meta's mean and std exactly as fmnist.data.transforms.normalize does, the model runs through
fmnist.inference.logits (so flip test-time augmentation, when the meta asks for it, is the same code), and the
outputs are `probabilities` [batch, K] (softmax) and `logits` [batch, K]. The ModelMeta travels in the file's
metadata_props (fmnist.export.metadata).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fmnist.checkpoint import ModelMeta
from fmnist.data.transforms import normalize
from fmnist.errors import UsageError
from fmnist.export.deps import require
from fmnist.export.fold import fold_batchnorm
from fmnist.export.metadata import INPUT_TYPES, describe_input, metadata_props, verified_props
from fmnist.export.runtime import INPUT_NAME, OUTPUT_NAMES, OnnxPredictor
from fmnist.export.verify import Verification, measure
from fmnist.fileio import atomic_write
from fmnist.inference import Predictor, logits

EXAMPLE_BATCH = 2  # the example the graph is traced on: above 1, so the batch axis is not specialized to it


class ExportGraph(nn.Module):
    """Raw pixels [N, H, W] -> (probabilities, logits) [N, K]: normalization, the model and flip TTA in one module."""

    def __init__(self, model: nn.Module, meta: ModelMeta, input_type: str = "uint8") -> None:
        super().__init__()
        check_input_type(input_type)
        self.model = model.eval()
        self.mean, self.std, self.tta_flip, self.input_type = meta.mean, meta.std, bool(meta.tta_flip), input_type
        self.tta_shift = int(meta.tta_shift or 0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_type == "uint8":
            x = normalize(images, self.mean, self.std)
        else:  # float pixels already divided by 255
            x = ((images.to(torch.float32) - self.mean) / self.std).unsqueeze(1)
        out = logits(self.model, x, self.tta_flip, shift=self.tta_shift)
        return torch.softmax(out, dim=1), out


@dataclass(frozen=True)
class ExportReport:
    """What `export_onnx` wrote: the file, its input, the BatchNorms folded and left, and the verification."""

    path: Path
    input_type: str
    folded_bn: int
    remaining_bn: int
    size_bytes: int
    seconds: float  # export, verification and writing
    verification: Verification | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"path": str(self.path), "format": "onnx", "input_type": self.input_type, "folded_bn": self.folded_bn,
                "remaining_bn": self.remaining_bn, "size_bytes": self.size_bytes, "seconds": self.seconds,
                "verification": self.verification.to_dict() if self.verification is not None else None}


def check_input_type(input_type: str) -> None:
    """A UsageError unless `input_type` is one of INPUT_TYPES."""
    if input_type not in INPUT_TYPES:
        raise UsageError(f"unknown input type {input_type!r}; use {' or '.join(INPUT_TYPES)}")


def check_destination(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """`path` as a Path if an export may be written there, else a UsageError saying what to pass instead."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise UsageError(f"--out {path} must end in .onnx (the ONNX backend knows an exported model by it)")
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; pass a file name such as {path / 'model.onnx'}")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass --overwrite to replace it, or another --out")
    return path


def export_onnx(model: nn.Module, meta: ModelMeta, path: str | os.PathLike, input_type: str = "uint8",
                overwrite: bool = False, verify_images: np.ndarray | None = None,
                verify_source: str = "given") -> ExportReport:
    """Export `model` (with `meta`) to the ONNX file `path`, written atomically; refuses an existing file unless
    `overwrite`. With `verify_images` (uint8 [N, H, W]) the export is checked against PyTorch on them before it is
    written, and the figures are stored in the file's `verified` metadata and the report."""
    start = time.perf_counter()
    path = check_destination(path, overwrite)
    proto, folded, remaining = _export_proto(model, meta, input_type)
    verification = None
    if verify_images is not None:
        onnx_predictor = OnnxPredictor(proto.SerializeToString())
        # device None: the PyTorch model runs where it is, and stays there.
        verification = measure(onnx_predictor, Predictor(model, meta, device=None), verify_images, verify_source)
        _set_props(proto, verified_props(verification.to_dict()))
    data = proto.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return ExportReport(path, input_type, folded, remaining, len(data), time.perf_counter() - start, verification)


def export_onnx_bytes(model: nn.Module, meta: ModelMeta, input_type: str = "uint8") -> bytes:
    """The serialized ONNX model `export_onnx` would write, in memory (nothing verified, nothing written)."""
    return _export_proto(model, meta, input_type)[0].SerializeToString()


def _export_proto(model: nn.Module, meta: ModelMeta, input_type: str) -> tuple[Any, int, int]:
    """(onnx.ModelProto with the fmnist metadata, BatchNorms folded, BatchNorms remaining)."""
    check_input_type(input_type)
    require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    folded, count, remaining = fold_batchnorm(getattr(model, "_orig_mod", model))
    graph = ExportGraph(folded.to("cpu").float(), meta, input_type).eval()
    h, w = meta.input_size
    dtype = torch.uint8 if input_type == "uint8" else torch.float32
    example = torch.zeros(EXAMPLE_BATCH, h, w, dtype=dtype)
    with _quiet():
        program = torch.onnx.export(
            graph, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, verbose=False, external_data=False)
    proto = program.model_proto
    _set_props(proto, metadata_props(meta, input_type))
    proto.doc_string = describe_input(meta, input_type)
    return proto, count, remaining


def _set_props(proto: Any, props: Mapping[str, str]) -> None:
    """Set `props` in an onnx.ModelProto's metadata_props, replacing entries of the same keys."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter: its progress lines on stdout (stdout carries --json), its warnings and log records."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
