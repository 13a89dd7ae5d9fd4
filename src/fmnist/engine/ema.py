"""Exponential moving average of a model's weights (Polyak averaging), kept in fp32 beside the model."""

from __future__ import annotations

import torch
from torch import nn


class WeightEMA:
    """ema = decay * ema + (1 - decay) * weights, for parameters and floating buffers (BatchNorm statistics)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.tensors = [t for t in _state(model)]
        self.shadow = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def update(self, decay: float | None = None) -> None:
        """Move the average toward the model's current weights (one fused foreach op)."""
        d = self.decay if decay is None else decay
        torch._foreach_lerp_(self.shadow, [t.detach() for t in self.tensors], 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights with the average (call twice to swap back)."""
        for live, avg in zip(self.tensors, self.shadow):
            tmp = live.detach().clone()
            live.copy_(avg)
            avg.copy_(tmp)


def _state(model: nn.Module) -> list[torch.Tensor]:
    # Parameters and floating-point buffers (BN running mean/var); integer buffers (batch counts) are skipped.
    params = list(model.parameters())
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    return params + buffers
