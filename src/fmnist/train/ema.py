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


class Lookahead:
    """airbench's lookahead: `update(decay)` moves an average toward the weights and then sets the weights to it.

    It covers parameters and floating buffers (BatchNorm statistics), so the model's statistics keep matching
    its weights. With decay 0 it is a no-op on the model; the training loop ramps the decay up over training
    (see `lookahead_decay`) and ends with `update(1.0)`, which leaves the model at the average.
    """

    def __init__(self, model: nn.Module) -> None:
        self.tensors = _state(model)
        self.shadow = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        """shadow = decay * shadow + (1 - decay) * weights; weights = shadow."""
        live = [t.detach() for t in self.tensors]
        torch._foreach_lerp_(self.shadow, live, 1.0 - decay)
        torch._foreach_copy_(live, self.shadow)


def lookahead_decay(peak: float, step: int, total_steps: int) -> float:
    """The decay at optimizer step `step` of `total_steps`: peak * (step / total_steps)^3, as airbench ramps it."""
    return peak * (min(step, total_steps) / max(1, total_steps)) ** 3


def _state(model: nn.Module) -> list[torch.Tensor]:
    # Parameters and floating-point buffers (BN running mean/var); integer buffers (batch counts) are skipped.
    params = list(model.parameters())
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    return params + buffers


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, amp: torch.dtype | None = None) -> None:
    """Recompute every BatchNorm's running mean and variance for the model's current weights from images `x`.

    Averaged weights need statistics of their own: the averaged running statistics were collected under the
    live weights, whose scale drifts (weight decay shrinks the scale-invariant conv weights behind each
    BatchNorm), so the average lags the live model and the two no longer match. Measured on `best`: EMA
    weights with averaged statistics scored 83% on the held-out split while the live weights trained to 96%.
    Other layers (Dropout) stay in eval mode; the model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    model.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
        m.train()
    for i in range(0, len(x), batch_size):
        with torch.autocast(device_type=x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            model(x[i : i + batch_size])
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
        m.eval()
