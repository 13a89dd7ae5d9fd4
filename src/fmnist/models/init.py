"""Keras-default weight initialisation, so the seed architectures start where the seeds' Keras models did.

PyTorch's own default (kaiming_uniform with a=sqrt(5), i.e. U(±1/sqrt(fan_in)), and non-zero biases) differs
from Keras', which matters for reproducing the seeds' training curves with their learning rates.

Why torch.nn.init gives exactly the Keras bounds:
- Fans. Keras stores a conv kernel as (kh, kw, in, out) and takes fan_in = kh*kw*in, fan_out = kh*kw*out;
  PyTorch stores (out, in/groups, kh, kw) and takes fan_in = in/groups*kh*kw, fan_out = out*kh*kw (the same
  numbers for groups=1). A Dense kernel is (in, out) in Keras and (out, in) in PyTorch: fan_in = in either way.
- glorot_uniform: Keras samples U(±sqrt(6 / (fan_in + fan_out))); xavier_uniform_ with gain 1 samples
  U(±gain * sqrt(6 / (fan_in + fan_out))).
- he_uniform: Keras samples U(±sqrt(6 / fan_in)); kaiming_uniform_ with mode="fan_in", nonlinearity="relu"
  uses gain sqrt(2), std = gain / sqrt(fan_in) and bound sqrt(3) * std = sqrt(6 / fan_in).
- Biases: Keras starts them at zero. BatchNorm's gamma=1, beta=0, mean=0, var=1 match PyTorch's already.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

# The layers that carry a kernel in the Keras sense (Conv2D, Dense).
_KERNEL_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def glorot_uniform_(module: nn.Module) -> nn.Module:
    """Keras glorot_uniform on every conv/linear weight in `module` (itself included), zero biases."""
    return _init_kernels(module, lambda w: nn.init.xavier_uniform_(w, gain=1.0))


def he_uniform_(module: nn.Module) -> nn.Module:
    """Keras he_uniform on every conv/linear weight in `module` (itself included), zero biases."""
    return _init_kernels(module, lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu"))


def _init_kernels(module: nn.Module, init: Callable[[Tensor], Tensor]) -> nn.Module:
    for m in module.modules():
        if isinstance(m, _KERNEL_LAYERS):
            init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
