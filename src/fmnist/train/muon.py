"""Muon for the convolution filters, SGD for the rest: the optimizer of airbench94_muon (Jordan 2024).

Muon (MomentUm Orthogonalized by Newton-schulz) keeps SGD's Nesterov momentum but replaces each filter bank's
update, seen as a matrix [out_channels, in_channels * k * k], by the nearest semi-orthogonal matrix: every
direction of the update moves the weights by about the same amount, so the rare directions the raw gradient
barely touches learn as fast as the common ones. The orthogonalization is a few steps of a quintic
Newton-Schulz iteration (no SVD), cheap beside a training step for our matrix sizes. As airbench does, each
filter bank's Frobenius norm is pinned to sqrt(out_channels) before the update: BatchNorm follows every
convolution, so the norm carries no information and pinning it makes the learning rate a fixed angular step.
"""

from __future__ import annotations

import math

import torch

# The quintic's coefficients from the Muon write-up (Jordan et al. 2024): they push every singular value of a
# normalized matrix towards 1 quickly without making the iteration diverge for values near 0.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 3  # airbench94_muon's; the singular values then lie within roughly [0.7, 1.2]


def orthogonalize(g: torch.Tensor, steps: int = NS_STEPS, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An approximately semi-orthogonal matrix with g's row and column spaces (U V^T of g's SVD, roughly), for a
    2-D g [m, n]; computed in `dtype` (bf16 is what Muon uses on GPUs), returned in g's dtype."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    x = x / (x.norm() + 1e-7)  # every singular value now <= 1
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T  # iterate on the smaller Gram matrix
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(g.dtype)


def muon_step(params: list[torch.Tensor], state: dict, lr: float, momentum: float, nesterov: bool,
              dtype: torch.dtype = torch.float32) -> None:
    """One Muon update of each filter bank in `params` (4-D conv weights, or any >= 2-D weights) from its .grad;
    `state[p]` keeps p's momentum buffer. Weight decay is not applied: the pinned norm makes it moot."""
    for p in params:
        if p.grad is None:
            continue
        st = state[p]
        if "momentum_buffer" not in st:
            st["momentum_buffer"] = torch.zeros_like(p.grad)
        buf = st["momentum_buffer"]
        buf.mul_(momentum).add_(p.grad)
        update = p.grad.add(buf, alpha=momentum) if nesterov else buf
        p.mul_(math.sqrt(p.shape[0]) / (p.norm() + 1e-12))
        ortho = orthogonalize(update.reshape(len(update), -1), dtype=dtype)
        p.add_(ortho.view(p.shape), alpha=-lr)
