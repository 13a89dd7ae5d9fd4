"""How closely an exported model follows the PyTorch model it came from, and the images to measure it on."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from fmnist.checkpoint import ModelMeta
from fmnist.data import get_spec, load_split
from fmnist.data.registry import FOLDER
from fmnist.errors import DataError, UsageError
from fmnist.imaging.folder import load_folder
from fmnist.inference import BasePredictor

RANDOM_IMAGES = "random"  # the source named when the dataset was not available


@dataclass(frozen=True)
class Verification:
    """The agreement of an exported model with PyTorch on `n` images from `images` (a test split, or random)."""

    n: int
    agree: int  # images whose predicted class is the same
    max_abs_prob_diff: float  # the largest |p_onnx - p_torch| over every image and class
    images: str  # e.g. "fashion-mnist test" or "random"

    @property
    def agreement(self) -> float:
        """The fraction of images with the same predicted class."""
        return self.agree / self.n if self.n else 1.0

    def to_dict(self) -> dict:
        """A JSON-ready dict, with the agreement fraction."""
        return {**asdict(self), "agreement": self.agreement}

    def summary(self) -> str:
        """One line, e.g. "1000/1000 agree, max |dp| 3.1e-07 (fashion-mnist test images)"."""
        return f"{self.agree}/{self.n} agree, max |dp| {self.max_abs_prob_diff:.1e} ({self.images} images)"


def verify(onnx_predictor: BasePredictor, torch_predictor: BasePredictor, images: np.ndarray,
           batch_size: int = 256) -> tuple[float, float, int]:
    """(max absolute probability difference, fraction of images whose classes agree, number of images) of two
    predictors on uint8 images [N, H, W]."""
    if len(images) == 0:
        return 0.0, 1.0, 0
    ours = onnx_predictor.predict_proba(images, batch_size)
    theirs = torch_predictor.predict_proba(images, batch_size)
    diff = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max())
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    return diff, agreement, len(images)


def measure(onnx_predictor: BasePredictor, torch_predictor: BasePredictor, images: np.ndarray,
            source: str) -> Verification:
    """`verify` as a Verification record, naming where the images came from."""
    diff, agreement, n = verify(onnx_predictor, torch_predictor, images)
    return Verification(n, round(agreement * n), diff, source)


def verification_images(meta: ModelMeta, n: int, data_dir: str | os.PathLike | None = None,
                        seed: int = 0) -> tuple[np.ndarray, str]:
    """The first `n` test images of the model's dataset and their source ("<dataset> test"; of an image folder,
    DIR/test/ or the part of DIR held out at `seed`, "folder test"); where that dataset is not at hand (nothing is
    downloaded), `n` seeded random uint8 images and RANDOM_IMAGES."""
    try:
        if meta.dataset == FOLDER:
            if data_dir is None:
                raise UsageError("no image folder named")
            return np.ascontiguousarray(load_folder(data_dir, list(meta.classes), seed).test.images[:n]), "folder test"
        spec = get_spec(meta.dataset)
        test = load_split("test", spec, data_dir=data_dir, download=False)
        return np.ascontiguousarray(test.images[:n]), f"{spec.name} test"
    except (DataError, UsageError):
        h, w = meta.input_size
        return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8), RANDOM_IMAGES
