"""The fused MaxPool 2 -> BatchNorm (training) -> ReLU kernel for bf16 channels-last activations: the same outputs,
gradients and running statistics as PyTorch's layers under autocast (to bf16 rounding), odd sizes and NaN handled
as PyTorch does, deterministic, used only where it applies, and the same training run either way."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.ops import build
from fmnist.ops import pool_norm_relu as fused

needs_kernel = pytest.mark.skipif(build.library(fused.NAME) is None, reason=f"kernel {fused.status()}")
BF16_ULP = 2.0**-7  # relative spacing of bf16 numbers


def activations(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 2 + 0.3
    return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)


def norm_layer(channels: int, seed: int = 0) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        bn.bias.copy_(torch.rand(channels, generator=g) - 0.5)
    return bn


def run_both(x: torch.Tensor, bn: nn.BatchNorm2d, grad_seed: int = 1):
    """[(output, input grad, weight grad, bias grad, norm layer)] from the layers and from the kernel."""
    results = []
    for use_kernel in (False, True):
        norm = copy.deepcopy(bn)
        xi = x.detach().clone().requires_grad_(True)
        if use_kernel:
            assert fused.applies(xi, norm)
            y = fused.pool_norm_relu(xi, norm)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = F.relu(norm(F.max_pool2d(xi, 2)))
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed)).to(torch.bfloat16)
        y.backward(g)
        results.append((y.detach(), xi.grad, norm.weight.grad, norm.bias.grad, norm))
    return results


@needs_kernel
@pytest.mark.parametrize("shape", [(6, 32, 28, 28), (5, 64, 14, 14), (4, 48, 7, 7), (3, 16, 5, 6)])
def test_matches_pytorch_layers(shape):
    x = activations(shape)
    x[:, :, :2] = 0.5  # a flat band: ties in every window there (the first maximum wins, as in PyTorch)
    (y0, gx0, gw0, gb0, n0), (y1, gx1, gw1, gb1, n1) = run_both(x, norm_layer(shape[1]))
    assert y1.shape == y0.shape and y1.dtype == torch.bfloat16
    assert y1.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y1.float(), y0.float(), atol=0, rtol=BF16_ULP)
    assert gx1.shape == x.shape and gx1.dtype == torch.bfloat16
    scale = gx0.float().abs().max()
    assert torch.allclose(gx1.float(), gx0.float(), atol=float(scale) * BF16_ULP, rtol=0)
    assert torch.equal(gx1 != 0, gx0 != 0)  # the gradient lands on the same winners (and the odd edge gets 0)
    assert torch.allclose(gw1, gw0, rtol=1e-4, atol=1e-4) and torch.allclose(gb1, gb0, rtol=1e-4, atol=1e-4)
    assert torch.allclose(n1.running_mean, n0.running_mean, rtol=1e-5, atol=1e-6)
    assert torch.allclose(n1.running_var, n0.running_var, rtol=1e-5, atol=1e-6)
    assert int(n1.num_batches_tracked) == int(n0.num_batches_tracked) == 1


@needs_kernel
def test_nan_wins_its_window_and_spreads_as_in_pytorch():
    x = activations((2, 16, 4, 4))
    x[0, 3, 1, 1] = float("nan")
    (y0, *_), (y1, *_) = run_both(x, norm_layer(16))
    assert torch.isnan(y1[0, 3, 0, 0]) and torch.isnan(y0[0, 3, 0, 0])
    assert torch.equal(torch.isnan(y1), torch.isnan(y0))  # the channel's statistics are NaN in both


@needs_kernel
def test_deterministic():
    x, bn = activations((8, 32, 14, 14)), norm_layer(32)
    first, second = run_both(x, bn)[1], run_both(x, bn)[1]
    for a, b in zip(first[:4], second[:4]):
        assert torch.equal(a, b)


def test_applies_only_to_bf16_channels_last_training_on_the_cpu():
    bn = norm_layer(8)
    x = activations((2, 8, 6, 6))
    available = build.library(fused.NAME) is not None
    assert fused.applies(x, bn) == available
    assert not fused.applies(x.float(), bn)  # fp32: the layers
    assert not fused.applies(x.contiguous(), bn)  # NCHW: the layers
    assert not fused.applies(activations((2, 8, 1, 6)), bn)  # nothing to pool
    bn.eval()
    assert not fused.applies(x, bn)  # evaluation uses the running statistics: the layers


def test_switched_off_the_model_runs_its_layers(monkeypatch):
    monkeypatch.setenv(build.SWITCH, "0")
    assert not fused.applies(activations((2, 8, 6, 6)), norm_layer(8))
    assert fused.status() == f"off ({build.SWITCH}=0)"
