"""The ONNX Runtime backend: an exported model (`fmnist export`) run by onnxruntime on the CPU.

The file carries its ModelMeta (see fmnist.export.metadata), so it predicts like the model file it came from
with no other configuration, and without PyTorch running the model: normalization, flip test-time augmentation
and the softmax are all inside the graph.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from fmnist.errors import DataError
from fmnist.export.deps import require
from fmnist.export.metadata import EXPORT_HINT, read_metadata, read_verified
from fmnist.inference import BasePredictor

INPUT_NAME = "images"
OUTPUT_NAMES = ("probabilities", "logits")
_ERRORS_ONLY = 3  # onnxruntime log severity: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal


class OnnxPredictor(BasePredictor):
    """An exported model in an onnxruntime InferenceSession (CPU, graph optimizations on); one session run per batch
    gives both the probabilities and the logits."""

    backend = "onnx"

    def __init__(self, source: str | os.PathLike | bytes, threads: int | None = None, spin: bool = True) -> None:
        """Open `source`, an .onnx file path or the bytes of one; `threads`: intra-op threads (default: PyTorch's).

        `spin` False makes idle worker threads sleep instead of spinning for more work: slower back-to-back
        calls, but the cores stay free for other work between calls (the web service's event loop)."""
        ort = require("onnxruntime", "the ONNX backend (--backend onnx)")
        data, self.path = _read(source)
        where = str(self.path) if self.path is not None else "the exported model"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = _ERRORS_ONLY
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception alone
            raise DataError(f"{where} is not a valid ONNX model ({str(e).splitlines()[0][:160]}); {EXPORT_HINT}") from None
        modelmeta = self.session.get_modelmeta()
        props = dict(modelmeta.custom_metadata_map)
        meta, self.input_type = read_metadata(props, where)
        self.verified = read_verified(props)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or not set(OUTPUT_NAMES) <= set(outputs):
            raise DataError(f"{where} has inputs {inputs} and outputs {outputs}, not the {INPUT_NAME!r} input and "
                            f"{' and '.join(map(repr, OUTPUT_NAMES))} outputs of an fmnist export; {EXPORT_HINT}")
        super().__init__(meta)

    def predict_logits(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Logits float32 [N, K] for uint8 images [N, 28, 28]; with tta_flip, the mean over image and mirror."""
        return self._run(images, batch_size)[1]

    def predict_proba(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities float32 [N, K] for uint8 images [N, 28, 28], from the graph's softmax output."""
        return self._run(images, batch_size)[0]

    def _run(self, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, logits), each float32 [N, K], `batch_size` images per session run."""
        images = self.check_images(images)
        k = len(self.classes)
        if len(images) == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.float32)
        probs, logits = [], []
        for i in range(0, len(images), max(1, batch_size)):
            batch = images[i : i + batch_size]
            if self.input_type == "float":
                batch = batch.astype(np.float32) / np.float32(255.0)
            p, z = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
            probs.append(p)
            logits.append(z)
        return np.concatenate(probs).astype(np.float32, copy=False), np.concatenate(logits).astype(np.float32, copy=False)


def _read(source: str | os.PathLike | bytes) -> tuple[bytes, Path | None]:
    """The bytes of an ONNX model and the path they came from (None for bytes), or a DataError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    if not path.exists():
        raise DataError(f"ONNX file {path} does not exist; check the path or {EXPORT_HINT}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file; pass an .onnx file that `fmnist export` wrote")
    try:
        return path.read_bytes(), path
    except OSError as e:
        raise DataError(f"ONNX file {path} cannot be read ({e.strerror}); check that you may read it") from None
