"""Small things the tests build: learnable tiny splits, a tiny registered model and its meta, tiny CV data.

Not a test module: test modules import from here, never from each other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fmnist.checkpoint import ModelMeta
from fmnist.cv.results import CVConfig, CVData
from fmnist.data import Split
from fmnist.models import build_model
from fmnist.recipes import get_recipe

CLASSES = ["T-shirt/top", "Trouser", "Pullover"]
CV_CLASSES = 4  # classes of the tiny cross-validation data


def make_split(n: int, seed: int = 0, num_classes: int = 10):
    """A learnable tiny split: each class is a bright bar at its own rows, plus noise. uint8 [n,28,28]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        row = 2 + 2 * int(c)
        images[i, row : row + 2, 4 + int(c) : 24] = 230
    return Split(images=images, labels=labels, classes=tuple(str(c) for c in range(num_classes)))


class TinyNet(nn.Module):
    """Conv -> BN -> ReLU -> Conv -> 4x4 pool -> Linear: small, has buffers, and is not mirror-symmetric."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)  # in_channels > 1: channels_last changes its strides
        self.fc = nn.Linear(width * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv2(torch.relu(self.bn(self.conv(x)))), 4)  # [N, width, 7, 7]
        return self.fc(x.flatten(1))


def tiny_model(seed: int = 0, width: int = 4) -> nn.Module:
    """A TinyNet with random weights and non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model("test-tiny", in_channels=1, num_classes=len(CLASSES), width=width)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def tiny_meta(**changes) -> ModelMeta:
    """Meta matching tiny_model(); `changes` override fields."""
    fields = dict(model="test-tiny", model_args={"in_channels": 1, "num_classes": len(CLASSES), "width": 4},
                  classes=CLASSES, mean=0.2860, std=0.3530, recipe={"name": "tiny", "tta_flip": False},
                  metrics={"test_accuracy": 0.9121, "test_loss": np.float32(0.25)},
                  dataset="fashion-mnist", dataset_checksum="sha256:abc")
    fields.update(changes)
    return ModelMeta(**fields)


def tiny_data(n: int = 200, seed: int = 0) -> CVData:
    """n noisy 28x28 images; class c brightens rows 5c..5c+4, faintly enough that 1 epoch is far from perfect."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % CV_CLASSES).astype(np.int64)
    images = rng.integers(0, 200, size=(n, 28, 28)).astype(np.int64)
    for c in range(CV_CLASSES):
        images[labels == c, 5 * c : 5 * c + 5, :] += 40
    return CVData(np.clip(images, 0, 255).astype(np.uint8), labels, CV_CLASSES, name="tiny", checksum="tiny-v1")


def tiny_recipes(epochs: int = 1):
    return (get_recipe("mlp").replace(epochs=epochs), get_recipe("baseline").replace(epochs=epochs))


# A small `fast` net, and the same with every airbench method the engine has switched on.
SMALL_RESNET = {"stem": 8, "widths": [8, 16], "blocks": [0, 1]}
AIRBENCH_RESNET = {**SMALL_RESNET, "whiten": 3, "dirac": True, "bn_weight": False, "bn_momentum": 0.4, "logit_scale": 0.5}


def airbench_recipe(epochs: int = 2):
    """`fast`, small, with whitening, dirac init, frozen BN weights, fast BN momentum, BN biases at 16x the
    learning rate, lookahead, alternating flips and shift TTA."""
    fast = get_recipe("fast")
    return fast.replace(epochs=epochs, batch_size=32, model_args=AIRBENCH_RESNET, lookahead=0.77, tta_shift=1,
                        optimizer=dataclasses.replace(fast.optimizer, norm_bias_lr=16),
                        augment=dataclasses.replace(fast.augment, alternate_flip=True, resize=()))


def config(out: Path, **kw) -> CVConfig:
    base = {"recipes": tiny_recipes(), "out": out, "threads": 1, "precision": "fp32", "device": "cpu"}
    return CVConfig(**(base | kw))



def png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """An image array (uint8 [H, W] or [H, W, 3]) encoded as a file, in memory."""
    from fmnist.imaging import encode_image

    return encode_image(image, fmt)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost none (benchmarks.http_load.bomb_png)."""
    from benchmarks.http_load import bomb_png

    return bomb_png(width, height)
