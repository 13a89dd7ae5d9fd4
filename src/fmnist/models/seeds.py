"""The seed architectures (../shared/SEEDS.md), layer for layer, with Keras' default initialisation.

Each model is an nn.Sequential of named layers (conv1, pool1, fc1, ...) so summaries read like the seeds'
`model.summary()`. Every model maps [N, in_channels, H, W] floats to logits [N, num_classes]: the seeds'
final softmax is folded into the cross-entropy loss. The flatten size is computed from `image_size`
(28 for the MNIST family), never hard-coded.

One order differs from the seeds' code and not their function: where a ReLU feeds a max-pool directly, the
pool runs first. Both are monotone, so pool(relu(x)) == relu(pool(x)) value for value, and the gradients agree
too (a pooled maximum that is negative gets no gradient either way). The ReLU then touches a quarter of the
values, forward and backward (`baseline`: about 0.1 ms of a 1.4 ms step).

Flatten reads the features in Keras' [H, W, C] order (`KerasFlatten`), which is also the order channels-last
tensors already have in memory, so flattening them costs no copy.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice

import torch
from torch import nn

from fmnist.ops import conv_pool_relu as fused
from fmnist.errors import UsageError
from fmnist.models.layers import Classifier, Dropout
from fmnist.models.init import glorot_uniform_, he_uniform_

# Keras padding names -> PyTorch padding for a 3x3 kernel at stride 1.
_PADDING = {"valid": 0, "same": 1}

# Keras BatchNormalization defaults: moving = 0.99 * moving + 0.01 * batch (PyTorch momentum is the weight
# of the batch statistic, so 1 - 0.99), and epsilon 1e-3 (PyTorch's default is 1e-5).
_BN_MOMENTUM = 0.01
_BN_EPS = 1e-3


class KerasFlatten(nn.Module):
    """Flatten [N, C, H, W] to [N, H*W*C] in Keras' channels-last order.

    For channels-last tensors the permute is a view of memory that is already in this order, so the flatten
    is free in the forward pass and its gradient needs no layout conversion in the backward pass (PyTorch's
    nn.Flatten forces an NCHW copy there, which cost ~20% of a `baseline` training step on CPU).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def conv3x3(in_channels: int, out_channels: int, padding: str = "valid") -> nn.Conv2d:
    """A 3x3 stride-1 convolution with Keras' padding name ("valid" or "same")."""
    if padding not in _PADDING:
        raise UsageError(f"unknown padding {padding!r}; use 'valid' or 'same'")
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=_PADDING[padding])


def keras_batchnorm2d(channels: int) -> nn.BatchNorm2d:
    """BatchNorm2d with Keras' BatchNormalization defaults (momentum 0.99, epsilon 1e-3)."""
    return nn.BatchNorm2d(channels, momentum=_BN_MOMENTUM, eps=_BN_EPS)


def keras_batchnorm1d(features: int) -> nn.BatchNorm1d:
    """BatchNorm1d with Keras' BatchNormalization defaults (momentum 0.99, epsilon 1e-3)."""
    return nn.BatchNorm1d(features, momentum=_BN_MOMENTUM, eps=_BN_EPS)


def flat_features(layers: OrderedDict[str, nn.Module], in_channels: int, image_size: int) -> int:
    """Number of features per image after `layers` (ending in Flatten), found on one zero image."""
    stack = nn.Sequential(layers)
    # Eval mode so BatchNorm does not fold the dummy batch into its running statistics.
    stack.eval()
    with torch.no_grad():
        n = stack(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
    stack.train()
    return int(n)


class FusedStem(nn.Sequential):
    """A Sequential that opens with conv1 -> pool1 -> relu1: Conv 3x3 on one channel, MaxPool 2, ReLU.

    While it trains on CPU those three run as one fused kernel, forward and backward
    (`fmnist.ops.conv_pool_relu`: the same function and gradients, computed in fp32, for about a fifth
    of the time). In eval mode, with hooks on those layers, or where the kernel does not apply or cannot be
    built, they run layer by layer. The layers and their state-dict keys are the same either way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self._stem_fuses(x):
            x = fused.conv_pool_relu(x, self.conv1.weight, self.conv1.bias, self.conv1.padding[0])
            for layer in islice(self, 3, None):
                x = layer(x)
            return x
        return super().forward(x)

    def _stem_fuses(self, x: torch.Tensor) -> bool:
        stem = (self.conv1, self.pool1, self.relu1)
        return (
            isinstance(self.relu1, nn.ReLU)
            and not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in stem)
            and fused.conv_pool_relu_applies(self.conv1, self.pool1, x)
        )


class MLP(nn.Sequential):
    """Flatten -> Dense hidden ReLU -> Dense num_classes (seed 004, part 1)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, hidden: int = 128, image_size: int = 28) -> None:
        super().__init__(
            OrderedDict(
                flatten=KerasFlatten(),
                fc1=nn.Linear(in_channels * image_size * image_size, hidden),
                relu1=nn.ReLU(),
                fc2=Classifier(hidden, num_classes),
            )
        )
        glorot_uniform_(self)


class Baseline(FusedStem):
    """Conv 3x3 ReLU -> MaxPool 2 -> Dense 100 ReLU -> Dense num_classes, he_uniform (seed 002)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        filters: int = 32,
        padding: str = "valid",
        image_size: int = 28,
    ) -> None:
        features = OrderedDict(
            conv1=conv3x3(in_channels, filters, padding),
            pool1=nn.MaxPool2d(2),  # before the ReLU: the same function, a quarter of the ReLU's work
            relu1=nn.ReLU(),
            flatten=KerasFlatten(),
        )
        n = flat_features(features, in_channels, image_size)
        super().__init__(OrderedDict(**features, fc1=nn.Linear(n, 100), relu2=nn.ReLU(), fc2=Classifier(100, num_classes)))
        # The seed sets kernel_initializer='he_uniform' on the conv and hidden dense; the output layer keeps
        # Keras' default glorot_uniform.
        he_uniform_(self.conv1)
        he_uniform_(self.fc1)
        glorot_uniform_(self.fc2)


class Seed003(FusedStem):
    """Conv 32 -> Pool -> Conv 64 -> Pool -> Dense 128 -> Dropout 0.2 -> Dense num_classes (seed 003)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        features = OrderedDict(
            conv1=conv3x3(in_channels, 32),
            pool1=nn.MaxPool2d(2),  # pool before ReLU, as in Baseline
            relu1=nn.ReLU(),
            conv2=conv3x3(32, 64),
            pool2=nn.MaxPool2d(2),
            relu2=nn.ReLU(),
            flatten=KerasFlatten(),
        )
        n = flat_features(features, in_channels, image_size)
        super().__init__(
            OrderedDict(
                **features,
                fc1=nn.Linear(n, 128),
                relu3=nn.ReLU(),
                drop1=Dropout(0.2),
                fc2=Classifier(128, num_classes),
            )
        )
        glorot_uniform_(self)


class Seed004(nn.Sequential):
    """Conv 32 -> Conv 64 -> Pool -> Dropout 0.25 -> Dense num_classes (seed 004)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        features = OrderedDict(
            conv1=conv3x3(in_channels, 32),
            relu1=nn.ReLU(),
            conv2=conv3x3(32, 64),
            pool1=nn.MaxPool2d(2),  # pool before ReLU, as in Baseline
            relu2=nn.ReLU(),
            drop1=Dropout(0.25),
            flatten=KerasFlatten(),
        )
        n = flat_features(features, in_channels, image_size)
        super().__init__(OrderedDict(**features, fc1=Classifier(n, num_classes)))
        glorot_uniform_(self)


class MiniVGG(nn.Sequential):
    """MiniVGGNet (seeds 000/001): 2 x [(Conv 3x3 same -> ReLU -> BN) x 2 -> Pool -> Dropout], Dense 512 -> BN."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        # The seed puts BatchNorm after the ReLU, not before it; kept as written.
        features = OrderedDict(
            conv1=conv3x3(in_channels, 32, "same"),
            relu1=nn.ReLU(),
            bn1=keras_batchnorm2d(32),
            conv2=conv3x3(32, 32, "same"),
            relu2=nn.ReLU(),
            bn2=keras_batchnorm2d(32),
            pool1=nn.MaxPool2d(2),
            drop1=Dropout(0.25),
            conv3=conv3x3(32, 64, "same"),
            relu3=nn.ReLU(),
            bn3=keras_batchnorm2d(64),
            conv4=conv3x3(64, 64, "same"),
            relu4=nn.ReLU(),
            bn4=keras_batchnorm2d(64),
            pool2=nn.MaxPool2d(2),
            drop2=Dropout(0.25),
            flatten=KerasFlatten(),
        )
        n = flat_features(features, in_channels, image_size)
        super().__init__(
            OrderedDict(
                **features,
                fc1=nn.Linear(n, 512),
                relu5=nn.ReLU(),
                bn5=keras_batchnorm1d(512),
                drop3=Dropout(0.5),
                fc2=Classifier(512, num_classes),
            )
        )
        glorot_uniform_(self)
