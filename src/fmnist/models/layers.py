"""Layers shared by the architectures."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Linear):
    """The final Linear that produces the logits; it always computes in fp32, even under bf16 autocast.

    bf16 keeps 8 bits of mantissa: a logit near 10 is rounded to a multiple of 1/16, which blurs the
    softmax-cross-entropy gradient late in training. Measured on `baseline` (10 epochs): seed 0 scored 90.15%
    test with bf16 logits and 90.54% with this head; on the seed's 5 folds, bf16 with this head against fp32
    throughout is 90.72% vs 90.83%, within noise (p = 0.2; docs/results.md). The head is a few thousand
    multiply-accumulates per image, so fp32 here is free.
    Same parameters and state-dict keys as nn.Linear.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask: 16 random bits per value, from `random_` on int64 words.

    On CPU the mask draw dominated the layer: `bernoulli_` takes about 3x as long as `rand`, and `rand` about 6x
    as long as filling int64 words with `random_` and reading them as four 16-bit integers each (200k values:
    1,200 / 400 / 65 us on 2 cores). A value is kept when its 16 bits fall at or above round(p * 65536), so
    P(drop) is p to within 2^-17 (exactly for p = 0.25 or 0.5, MiniVGGNet's rates). The 0/1 mask is made in
    the data's dtype through uint8: converting a bool tensor to bf16 takes 84 us for 200k values, the same
    bytes read as uint8 13 us (so do `x * bool_mask`, `where` and `masked_fill`, 100-220 us: the slow
    path of mixed-dtype kernels). Kept values are then scaled by 1 / (1 - p) in fp32 and rounded once, as
    nn.Dropout does. The bits come from the global generator, like nn.Dropout's, so a seeded run is still
    deterministic.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        mask = keep_mask(x, self.p).view(torch.uint8).to(x.dtype)
        return x * mask * (1.0 / (1.0 - self.p))


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A bool mask shaped like `x`, in its memory layout: False with probability p (to within 2^-17)."""
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)  # all 64 bits
    keep = words.view(torch.int16)[:n] >= round(p * 65536) - 32768  # int16 is uniform over [-32768, 32767]
    if x.dim() == 0 or not _dense(x):
        return keep.view(x.shape)
    # The bits are independent, so any layout of them is a valid mask: lay them out like x in memory
    # (channels-last stays channels-last) so the kernel walks both tensors in the same order.
    order = sorted(range(x.dim()), key=lambda d: -x.stride(d))
    return keep.view([x.shape[d] for d in order]).permute([order.index(d) for d in range(x.dim())])


def _dense(x: torch.Tensor) -> bool:
    """Whether x's elements fill exactly numel() slots of memory (any dimension order, no gaps or overlap)."""
    expected = 1
    for d in sorted(range(x.dim()), key=lambda d: x.stride(d)):
        if x.shape[d] != 1 and x.stride(d) != expected:
            return False
        expected *= x.shape[d]
    return True
