"""Inference with a trained model: the one path from model input to logits, and everything built on it.

`batched_logits` is the only place a model is run for its predictions: per-epoch validation and cross-validation
folds (fmnist.train), the test figures of a run, `fmnist evaluate`, `fmnist predict` and the benchmarks all go
through it, so flip test-time augmentation and the numerics are written once. It runs in fp32 unless given an
autocast dtype (validation may use the training precision for speed: `TrainOptions.val_precision`).

Everything a `Predictor` needs besides the weights (normalization, class names, flip test-time augmentation)
comes from its ModelMeta, so a model file predicts correctly with no other configuration.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.checkpoint import ModelMeta, load_model
from fmnist.data.transforms import normalize
from fmnist.runtime import autocast, resolve_device
from fmnist.errors import DataError
from fmnist.imaging import Preprocessed, check_mode, prepare_file

TOP_K = 3  # alternatives reported per prediction
# A prediction is "confident" when its top probability reaches the model's threshold. A model trained with a
# held-out split stores one chosen there (CONFIDENCE_QUANTILE); other models use `default_confidence`:
# DEFAULT_CONFIDENCE, or 1.5 times chance where that is more (0.75 for two classes, whose top is never below 0.5).
DEFAULT_CONFIDENCE = 0.5
CONFIDENCE_QUANTILE = 0.05  # the threshold passes 95% of the held-out images: the rest, and oddities, are flagged


@dataclass
class Prediction:
    """The predicted class of one image file, with the top alternatives as (index, name, probability)."""

    path: str
    index: int
    name: str
    probability: float
    top: list[tuple[int, str, float]]
    confident: bool = True  # probability >= the model's confidence threshold
    preprocess: str = "dataset"  # the preprocessing mode that ran
    image: np.ndarray | None = None  # uint8 [28, 28]: what the model saw
    probabilities: list[float] | None = None  # every class's, in class order

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (top as a list of {index, name, probability}; without the image)."""
        d = {"path": self.path, "index": self.index, "name": self.name, "probability": self.probability,
             "confident": self.confident, "preprocess": self.preprocess,
             "top": [{"index": i, "name": n, "probability": p} for i, n, p in self.top]}
        if self.probabilities is not None:
            d["probabilities"] = self.probabilities
        return d


def default_confidence(num_classes: int) -> float:
    """The confidence threshold of a model that chose none on held-out images: 0.5, or 1.5 times chance if more."""
    return max(DEFAULT_CONFIDENCE, 1.5 / max(1, num_classes))


def model_confidence(meta: ModelMeta) -> float:
    """The threshold `meta`'s model flags predictions by: its own, else `default_confidence`."""
    return meta.confidence_threshold if meta.confidence_threshold is not None else default_confidence(len(meta.classes))


def confidence_threshold(probabilities: np.ndarray, quantile: float = CONFIDENCE_QUANTILE) -> float:
    """The top probability that `1 - quantile` of these (held-out) rows [N, K] reach: the confidence threshold."""
    if len(probabilities) == 0:
        return default_confidence(probabilities.shape[1] if probabilities.ndim == 2 else 0)
    return float(np.quantile(probabilities.max(axis=1), quantile))


def logits(model: nn.Module, x: torch.Tensor, tta_flip: bool = False, amp: torch.dtype | None = None,
           shift: int = 0) -> torch.Tensor:
    """Logits float32 [N, K] of an eval-mode `model` for normalized input x [N, C, H, W]; with `tta_flip`, the mean
    over the image and its left-right mirror. `amp` is an autocast dtype (None: fp32). With `shift` (pixels),
    also the image moved by `shift` up-left and down-right (edges replicated): weight 1/2 for the unmoved
    views, 1/4 for each moved one (airbench's multi-crop test-time augmentation)."""
    with autocast(x.device, amp):
        out = _views(model, x, tta_flip)
        if shift:
            views = (moved(x, -shift, -shift), moved(x, shift, shift))
            out = 0.5 * out + 0.25 * sum(_views(model, v, tta_flip) for v in views)
    return out


def moved(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x [N, C, H, W] moved by (dy, dx) pixels (negative: up/left), the edge pixels replicated into the gap."""
    h, w = x.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(x, (pad,) * 4, mode="replicate")
    return padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w].contiguous()


def _views(model: nn.Module, x: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    out = model(x).float()
    if tta_flip:
        out = (out + model(torch.flip(x, dims=[-1])).float()) / 2
    return out


@torch.inference_mode()
def batched_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, tta_flip: bool = False,
                   amp: torch.dtype | None = None, shift: int = 0) -> torch.Tensor:
    """Logits float32 [N, K], on x's device, of `model` for normalized input x [N, C, H, W], `batch_size` at a time.

    The model runs in eval mode (dropout off, BatchNorm on its running statistics); its mode is restored after.
    """
    was_training = model.training
    model.eval()
    try:
        return torch.cat([logits(model, x[i : i + batch_size], tta_flip, amp, shift)
                          for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def loss_and_accuracy(out: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of logits [N, K] against labels [N]."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(out, labels)
    return float(loss), float((out.argmax(1) == labels).double().mean())


class BasePredictor:
    """What every backend shares: a model's meta (classes, normalization, confidence threshold) and the steps from
    image files to predictions. A backend (torch here, ONNX Runtime in fmnist.export) supplies `predict_logits`."""

    backend = "base"

    def __init__(self, meta: ModelMeta) -> None:
        self.meta = meta
        self.classes = list(meta.classes)
        self.tta_flip = meta.tta_flip
        self.tta_shift = meta.tta_shift
        self.threshold = model_confidence(meta)

    def predict_logits(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Logits float32 [N, K] for uint8 images [N, H, W]."""
        raise NotImplementedError

    def predict_proba(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities float32 [N, K] (rows sum to 1) for uint8 images [N, 28, 28]."""
        logits = torch.from_numpy(self.predict_logits(images, batch_size))
        return torch.softmax(logits, dim=1).numpy()

    def predictions(self, probs: np.ndarray, names: Sequence[str], prepared: Sequence[Preprocessed],
                    top_k: int = TOP_K) -> list[Prediction]:
        """Predictions from class probabilities [N, K] of already preprocessed images, named by `names`."""
        k = max(1, min(top_k, len(self.classes)))
        out = []
        for name, item, p in zip(names, prepared, probs):
            order = np.argsort(-p, kind="stable")[:k]  # ties keep the lower class index first
            top = [(int(i), self.classes[i], float(p[i])) for i in order]
            index, label, probability = top[0]
            out.append(Prediction(name, index, label, probability, top, probability >= self.threshold,
                                  item.mode, item.image, [float(v) for v in p]))
        return out

    def predict_prepared(self, prepared: Sequence[Preprocessed], names: Sequence[str],
                         top_k: int = TOP_K) -> list[Prediction]:
        """Predictions for already preprocessed images, named by `names`."""
        if not prepared:
            return []
        return self.predictions(self.predict_proba(np.stack([p.image for p in prepared])), names, prepared, top_k)

    def predict_files(self, paths: Sequence[str | os.PathLike], mode: str = "auto"
                      ) -> tuple[list[Prediction], list[tuple[str, str]]]:
        """The predicted class of each readable image file, preprocessed with `mode` (see fmnist.imaging), and
        (path, reason) for each file that could not be read or preprocessed (skipped, not fatal)."""
        check_mode(mode)
        prepared, names, failed = [], [], []
        for path in paths:
            try:
                prepared.append(prepare_file(path, mode))
                names.append(str(Path(path)))
            except DataError as e:
                failed.append((str(path), str(e)))
        return self.predict_prepared(prepared, names), failed

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """`images` as a C-contiguous uint8 [N, H, W] array, or a DataError saying what this model takes."""
        images = np.asarray(images)
        h, w = self.meta.input_size
        if images.ndim != 3 or images.shape[1:] != (h, w) or images.dtype != np.uint8:
            raise DataError(f"images must be uint8 [N, {h}, {w}] to fit this model, got {images.dtype} "
                            f"{list(images.shape)}; use a dataset of {h}x{w} grayscale images")
        return np.ascontiguousarray(images)


class Predictor(BasePredictor):
    """A PyTorch model plus its meta: normalizes uint8 images and runs the model without gradients."""

    backend = "torch"

    def __init__(self, model: nn.Module, meta: ModelMeta, device: str | torch.device | None = None,
                 amp: torch.dtype | None = None) -> None:
        super().__init__(meta)
        # device None: run where the model already is (e.g. the trainer's model on the GPU), moving nothing.
        if device is None:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.amp = amp  # autocast dtype for inference (None: fp32)

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Predictor":
        """Load a model file (or a run directory holding model.safetensors) for prediction."""
        model, meta = load_model(path, device)
        return cls(model, meta, device)

    def predict_logits(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Logits float32 [N, K] for uint8 images [N, 28, 28]; with tta_flip, the mean over image and mirror."""
        images = self.check_images(images)
        if len(images) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = normalize(torch.from_numpy(images).to(self.device), self.meta.mean, self.meta.std)
        return batched_logits(self.model, x, batch_size, self.tta_flip, self.amp, self.tta_shift).cpu().numpy()


def evaluate(predictor: BasePredictor, images: np.ndarray, labels: np.ndarray, batch_size: int = 1024) -> dict[str, Any]:
    """Accuracy, mean cross-entropy, predicted labels [N] and probabilities [N, K] of `predictor` on a labelled set.

    Deterministic on CPU for a given batch size, so evaluating a saved model reproduces the accuracy recorded
    at training time when training evaluated through this same function.
    """
    labels = np.asarray(labels)
    k = len(predictor.classes)
    if labels.shape != (len(images),):
        raise DataError(f"{len(images)} images but labels of shape {list(labels.shape)}; the dataset files do not match")
    if len(labels) == 0:
        raise DataError("no images to evaluate on; the dataset is empty")
    if labels.min() < 0 or labels.max() >= k:
        raise DataError(f"labels range over {int(labels.min())}..{int(labels.max())} but the model knows {k} classes; "
                        "evaluate on the dataset the model was trained for")
    logits = torch.from_numpy(predictor.predict_logits(images, batch_size))
    target = torch.from_numpy(labels.astype(np.int64))
    y_pred = logits.argmax(dim=1)
    return {
        "accuracy": float((y_pred == target).double().mean()),
        "loss": float(F.cross_entropy(logits, target)),
        "y_pred": y_pred.numpy(),
        "y_prob": torch.softmax(logits, dim=1).numpy(),
    }
