"""Folding BatchNorm into the convolution or linear layer before it, for inference.

In eval mode a BatchNorm is the per-channel affine map y = a * x + b with a = gamma / sqrt(var + eps) and
b = beta - a * mean. When it directly follows a Conv2d or a Linear, that map folds into the layer's weights and
bias: the same function with one layer fewer. It also folds across a MaxPool2d between them (conv -> pool -> BN,
`fmnist.models.resnet.Stage`) when every a > 0: max(a * x + b) = a * max(x) + b for an increasing map.

Only nn.Sequential containers are folded (at any depth), where the order of the children is the order they run.
A BatchNorm elsewhere (after a ReLU, in a custom forward, or without running statistics) is left as it is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int, int]:
    """A deep copy of `model` in eval mode with every foldable BatchNorm folded into the layer before it (and
    replaced by nn.Identity); returns (folded copy, BatchNorms folded, BatchNorms remaining)."""
    folded = copy.deepcopy(model).eval()
    count = 0
    with torch.no_grad():
        for module in list(folded.modules()):
            if isinstance(module, nn.Sequential):
                count += _fold_sequential(module)
    return folded, count, count_batchnorm(folded)


def count_batchnorm(model: nn.Module) -> int:
    """The number of BatchNorm layers in `model`."""
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold the BatchNorms of `seq`'s own children in place; returns how many were folded."""
    count = 0
    layers = list(seq)
    for i, layer in enumerate(layers):
        bn_at = _batchnorm_after(layers, i)
        if bn_at is None:
            continue
        bn = layers[bn_at]
        scale, shift = _affine(bn)
        if bn_at == i + 2 and not bool((scale > 0).all()):
            continue  # the pool between them commutes only with an increasing map
        _fold_into(layer, scale, shift)
        seq[bn_at] = nn.Identity()
        layers[bn_at] = seq[bn_at]
        count += 1
    return count


def _batchnorm_after(layers: list[nn.Module], i: int) -> int | None:
    """The index of a BatchNorm that folds into layers[i]: right after it, or after a conv's MaxPool2d."""
    layer = layers[i]
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    if isinstance(layer, nn.Linear) and _foldable(nxt, nn.BatchNorm1d, layer.out_features):
        return i + 1
    if isinstance(layer, nn.Conv2d):
        if _foldable(nxt, nn.BatchNorm2d, layer.out_channels):
            return i + 1
        after = layers[i + 2] if i + 2 < len(layers) else None
        if isinstance(nxt, nn.MaxPool2d) and _foldable(after, nn.BatchNorm2d, layer.out_channels):
            return i + 2
    return None


def _foldable(bn: nn.Module | None, kind: type, channels: int) -> bool:
    """Whether `bn` is a `kind` BatchNorm over `channels` that uses running statistics in eval mode."""
    return (isinstance(bn, kind) and bn.num_features == channels and bn.track_running_stats
            and bn.running_mean is not None and bn.running_var is not None)


def _affine(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode BatchNorm as y = scale * x + shift, per channel, in float64."""
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - scale * mean


def _fold_into(layer: nn.Conv2d | nn.Linear, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """layer(x) becomes scale * layer(x) + shift, per output channel; a layer without bias gets one."""
    weight = layer.weight
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(scale)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    weight.copy_((weight.double() * scale.reshape(shape)).to(weight.dtype))
    new_bias = (bias * scale + shift).to(dtype=weight.dtype, device=weight.device)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias, requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(new_bias)
